"""How the CLI's commands print: aligned text tables, JSON, and Service manifests as YAML.

Pure functions of a :class:`~dualstack_ipam.ClusterConfig`, of what the
allocators hold and of the commands' results: nothing here reads a file, a
flag or the state. The commands in :mod:`dualstack_ipam.cli.commands` choose
what to show; this module decides how it looks, so that every command
lays out a cluster, a node or a count the same way.

PyYAML is imported only by :func:`manifests_yaml`, when it runs; it prints
through :func:`dualstack_ipam.cli.yaml_text.dump` (libyaml's emitter when
PyYAML has it, the same text either way).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dualstack_ipam import service_key
from dualstack_ipam.cli.yaml_text import dump
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.net import IPFamily, usable_span
from dualstack_ipam.snapshot import write_int

__all__ = [
    "capacity_json",
    "capacity_table",
    "describe",
    "families",
    "flags_table",
    "format_table",
    "manifests_yaml",
    "node_table",
    "service_capacity",
    "services_table",
    "to_json",
    "usage_table",
]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An aligned plain-text table: columns two spaces apart, numbers right-aligned.

    ``None`` cells print as ``-``. A column is right-aligned when every cell
    below the header is an int.

    Complexity:
        O(cells).

    >>> print(format_table(["NODE", "PODS"], [["a", 256], ["node-b", 16]]))
    NODE    PODS
    a        256
    node-b    16
    """
    body = [list(row) for row in rows]
    text = [list(headers)] + [["-" if cell is None else str(cell) for cell in row] for row in body]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers))]
    numeric = [
        bool(body) and all(isinstance(row[i], int) and not isinstance(row[i], bool) for row in body)
        for i in range(len(headers))
    ]
    lines = []
    for line in text:
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(line, widths, numeric, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def to_json(data: Any) -> str:
    """``data`` as the commands print JSON: indented by two spaces.

    Complexity:
        O(size of ``data``).

    >>> print(to_json({"a": [1]}))
    {
      "a": [
        1
      ]
    }
    """
    return json.dumps(data, indent=2)


def families(config: ClusterConfig) -> list[IPFamily]:
    """Cluster families, then a Service family the cluster CIDRs lack (rare).

    Complexity:
        O(1).

    >>> families(ClusterConfig("fd00::/48", "10.96.0.0/24"))
    [<IPFamily.IPv6: 'IPv6'>, <IPFamily.IPv4: 'IPv4'>]
    """
    extra = [f for f in config.service_families if f not in config.families]
    return [*config.families, *extra]


def service_capacity(config: ClusterConfig, family: IPFamily) -> int:
    """Cluster IPs the Service range of ``family`` holds; 0 without one.

    The count of :func:`dualstack_ipam.net.usable_span`, the one home of
    the rule (no pool is built to read it).

    Complexity:
        O(1).

    >>> config = ClusterConfig("10.0.0.0/16", "10.96.0.0/12,fd00::/64")
    >>> service_capacity(config, IPFamily.IPv4), service_capacity(config, IPFamily.IPv6)
    (1048574, 18446744073709551615)
    """
    if family not in config.service_families:
        return 0
    _, count = usable_span(family, config.service_cidr(family).prefixlen)
    return count


def describe(config: ClusterConfig) -> str:
    """One line: the stack, the cluster CIDRs, the Service ranges, the primary family.

    Complexity:
        O(1).

    >>> describe(ClusterConfig("10.0.0.0/16"))
    'single-stack cluster 10.0.0.0/16 (Service ranges: none), primary family IPv4'
    """
    stack = "dual-stack" if config.is_dual_stack else "single-stack"
    services = ",".join(map(str, config.service_cidrs)) or "none"
    return (
        f"{stack} cluster {','.join(map(str, config.cluster_cidrs))} "
        f"(Service ranges: {services}), primary family {config.primary_family}"
    )


def capacity_table(config: ClusterConfig) -> str:
    """Per family: CIDRs, node mask, node and address counts, Service IPs.

    Complexity:
        O(1).
    """
    rows = []
    for family in families(config):
        has_pods = family in config.families
        mask = config.node_mask(family) if has_pods else None
        rows.append(
            [
                str(family),
                str(config.cluster_cidr(family)) if has_pods else None,
                f"/{mask}" if mask is not None else None,
                config.node_capacity(family) if has_pods else 0,
                2 ** (family.width - mask) if mask is not None else None,
                str(config.service_cidr(family)) if family in config.service_families else None,
                service_capacity(config, family),
            ]
        )
    return format_table(
        [
            "FAMILY",
            "CLUSTER CIDR",
            "NODE MASK",
            "NODES",
            "ADDRESSES/NODE",
            "SERVICE RANGE",
            "SERVICE IPS",
        ],
        rows,
    )


def capacity_json(config: ClusterConfig) -> dict[str, dict[str, Any]]:
    """The counts of :func:`capacity_table`, by family name, JSON-ready.

    Complexity:
        O(1).
    """
    counts: dict[str, dict[str, Any]] = {}
    for family in families(config):
        has_pods = family in config.families
        counts[str(family)] = {
            "nodes": write_int(config.node_capacity(family) if has_pods else 0),
            "addresses_per_node": (
                write_int(2 ** (family.width - config.node_mask(family))) if has_pods else None
            ),
            "service_ips": write_int(service_capacity(config, family)),
        }
    return counts


def flags_table(flags: Mapping[str, list[str]]) -> str:
    """One flag per line, the component named on its first line.

    Complexity:
        O(number of flags).
    """
    rows: list[list[object]] = []
    for component, values in flags.items():
        for i, flag in enumerate(values or ["(none)"]):
            rows.append([component if i == 0 else "", flag])
    return format_table(["COMPONENT", "FLAGS"], rows)


def node_table(config: ClusterConfig, items: Iterable[tuple[str, Sequence[Any]]]) -> str:
    """One row per node: its pod CIDR of each cluster family.

    Complexity:
        O(number of nodes).
    """
    rows = []
    for node, cidrs in items:
        by_family = {IPFamily.IPv4 if c.version == 4 else IPFamily.IPv6: str(c) for c in cidrs}
        rows.append([node, *(by_family.get(f) for f in config.families)])
    return format_table(["NODE", *(f"{f} POD CIDR" for f in config.families)], rows)


def services_table(results: Iterable[Mapping[str, Any]]) -> str:
    """One row per allocated Service manifest: its family fields and cluster IPs.

    Complexity:
        O(number of manifests).
    """
    rows = []
    for svc in results:
        spec = svc["spec"]
        rows.append(
            [
                service_key(svc),
                spec.get("ipFamily"),
                ",".join(spec["ipFamilies"]),
                spec["ipFamilyPolicy"],
                ",".join(spec["clusterIPs"]),
            ]
        )
    return format_table(
        ["SERVICE", "spec.ipFamily", "ipFamilies", "ipFamilyPolicy", "CLUSTER IPS"], rows
    )


def usage_table(usage: Mapping[str, Mapping[str, Any]]) -> str:
    """Per family: node CIDR and Service IP counts (``write_int`` values).

    Complexity:
        O(1).
    """
    rows = []
    for family, counts in usage.items():
        pods, ips = counts["node_cidrs"] or {}, counts["service_ips"] or {}
        row: list[object] = [family]
        row += [int(pods[k]) if pods else None for k in ("capacity", "reserved", "used", "free")]
        row += [int(ips[k]) if ips else None for k in ("capacity", "used", "free")]
        rows.append(row)
    return format_table(
        [
            "FAMILY",
            "NODE CIDRS",
            "RESERVED",
            "NODES USED",
            "NODES FREE",
            "SERVICE IPS",
            "IPS USED",
            "IPS FREE",
        ],
        rows,
    )


def _summary(manifest: Mapping[str, Any]) -> str:
    spec = manifest.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return "ExternalName: no cluster IP"
    ips = spec.get("clusterIPs") or []
    if ips == ["None"]:
        return "headless: no cluster IP"
    ip_families = spec.get("ipFamilies") or []
    return ", ".join(f"{ip} ({family})" for ip, family in zip(ips, ip_families, strict=False))


def manifests_yaml(manifests: Sequence[Mapping[str, Any]], *, libyaml: bool | None = None) -> str:
    """The manifests as YAML documents, each headed by a comment with its cluster IPs.

    Printed by libyaml's emitter when PyYAML has it (``libyaml`` None), else
    by PyYAML's pure one (``libyaml=False`` forces it): the same text
    either way (see :mod:`dualstack_ipam.cli.yaml_text`). Long strings are
    not folded.

    Complexity:
        O(total size of the manifests).

    >>> print(manifests_yaml([{"metadata": {"name": "a"}, "spec": {"clusterIPs": ["None"]}}]))
    # default/a: headless: no cluster IP
    metadata:
      name: a
    spec:
      clusterIPs:
      - None
    """
    parts = []
    for manifest in manifests:
        key = service_key(manifest)
        body = dump(dict(manifest), libyaml=libyaml)
        parts.append(f"# {key}: {_summary(manifest)}\n{body}")
    return "---\n".join(parts).rstrip("\n")
