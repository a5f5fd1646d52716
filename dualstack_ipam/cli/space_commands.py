"""Space in the store's ranges: ``reserve``, ``unreserve``, ``add-range`` and ``stats``.

``reserve RANGE [--reason TEXT]`` sets a CIDR, an address or an ``a-b``
address range aside, so that nothing is handed out from it; ``unreserve
RANGE`` frees the reserved slots in it. The range's own addresses say
which allocator it belongs to: the Service IPs when it touches a Service
range of its family, else the node CIDRs (whose pool keeps the space of a
Service range inside a cluster CIDR set aside anyway). ``add-range CIDR``
grows a family with another cluster CIDR, or with ``--service`` another
Service range (Kubernetes' ServiceCIDR objects). ``stats`` prints both
allocators' :meth:`~dualstack_ipam.NodeCIDRAllocator.stats`.

Each change is one store transaction. Refusals are the library's:
reserving over allocated space is exit 1, a range outside every range of
its family, a bad range or an overlapping new range is exit 2, as is an
operation the store does not support.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cli.ground import PROG, CLIError, Output
from dualstack_ipam.cli.options import json_option, store_options
from dualstack_ipam.cli.render import families, format_table, to_json
from dualstack_ipam.cli.reporting import emit
from dualstack_ipam.cli.store import Target, on_store, target
from dualstack_ipam.net import IPFamily
from dualstack_ipam.pools.ranges import parse_range
from dualstack_ipam.snapshot import write_int

if TYPE_CHECKING:
    import click

    from dualstack_ipam.durable import Cluster

__all__ = [
    "add_space_commands",
    "run_add_range",
    "run_reserve",
    "run_stats",
    "run_unreserve",
]

_KINDS = {"nodes": ("node_cidrs", "node CIDRs"), "services": ("service_ips", "Service IPs")}


def _services(cluster: Cluster, where: Target) -> Any:
    if not cluster.config.service_cidrs:
        raise CLIError(
            f"the cluster in {where.shown!r} has no Service range (--service-cluster-ip-range); "
            f"create the store with '{PROG} init --cluster-cidr=... "
            "--service-cluster-ip-range=...'"
        )
    return cluster.services


def _side_of(cluster: Cluster, value: str) -> str:
    """``"services"`` when ``value`` touches a Service range of its family, else ``"nodes"``."""
    span = parse_range(value)
    if span.family not in cluster.config.service_families:
        return "nodes"
    for cidr in cluster.services.ranges(span.family):
        if span.first <= cidr.last and cidr.first <= span.last:
            return "services"
    return "nodes"


def _change(where: Target, act: Callable[[Cluster], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Run ``act`` on the store; whether the store's revision moved (something saved)."""

    def action(cluster: Cluster) -> tuple[dict[str, Any], bool]:
        _ = cluster.nodes  # read the sides first: the revision is theirs
        if cluster.config.service_cidrs:
            _ = cluster.services
        before = cluster.revision
        result = act(cluster)
        return result, cluster.revision != before

    return on_store(where, action)


def run_reserve(
    value: str,
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    reason: str = "",
    as_json: bool = False,
) -> Output:
    """Reserve ``value`` (a CIDR, an address or ``a-b``) in the allocator whose range it touches.

    Raises:
        AddressFormatError, InvalidConfigError: ``value`` does not parse,
            or the store cannot keep reservations (exit 2).
        NotInRangeError: ``value`` covers none of its family's range (exit 2).
        AlreadyAllocatedError: a slot of ``value`` is held (exit 1).
        StoreUnavailableError: the store could not be reached (exit 5).

    Complexity:
        As the allocator's ``reserve``, plus one store transaction.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> print(run_reserve("10.96.0.200-10.96.0.254", path, reason="appliances"))
    ... # doctest: +ELLIPSIS
    reserved 10.96.0.200-10.96.0.254 in the IPv4 Service IPs: 55 newly reserved (appliances)
    >>> folder.cleanup()
    """
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> dict[str, Any]:
        side = _side_of(cluster, value)
        count = getattr(cluster, side).reserve(value, reason)
        family = parse_range(value).family
        return {"range": value, "kind": _KINDS[side][0], "family": str(family), "reserved": count}

    result, changed = _change(where, act)
    result["reason"] = reason
    if as_json:
        text = to_json(result)
    else:
        what = next(label for kind, label in _KINDS.values() if kind == result["kind"])
        why = f" ({reason})" if reason else ""
        text = (
            f"reserved {value} in the {result['family']} {what}: "
            f"{result['reserved']} newly reserved{why}"
        )
    return Output(text, saved=where.shown if changed else None)


def run_unreserve(
    value: str,
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
) -> Output:
    """Free the reserved slots of ``value`` in the allocator whose range it touches.

    Freeing what is not reserved is a no-op (0 freed, exit 0).

    Raises:
        AddressFormatError, InvalidConfigError: ``value`` does not parse,
            touches the node pool's Service set-aside (which is never
            freed), or the store cannot keep reservations (exit 2).
        NotInRangeError: ``value`` covers none of its family's range (exit 2).
        StoreUnavailableError: the store could not be reached (exit 5).

    Complexity:
        As the allocator's ``unreserve``, plus one store transaction.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> _ = run_reserve("10.244.8.0/22", path)
    >>> print(run_unreserve("10.244.8.0/24", path))
    freed 1 reserved IPv4 node CIDRs in 10.244.8.0/24
    >>> folder.cleanup()
    """
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> dict[str, Any]:
        side = _side_of(cluster, value)
        count = getattr(cluster, side).unreserve(value)
        family = parse_range(value).family
        return {"range": value, "kind": _KINDS[side][0], "family": str(family), "freed": count}

    result, changed = _change(where, act)
    if as_json:
        text = to_json(result)
    else:
        what = next(label for kind, label in _KINDS.values() if kind == result["kind"])
        text = f"freed {result['freed']} reserved {result['family']} {what} in {value}"
    return Output(text, saved=where.shown if changed else None)


def run_add_range(
    cidr: str,
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    service: bool = False,
    as_json: bool = False,
) -> Output:
    """Add ``cidr`` to its family: another cluster CIDR, or (``service``) Service range.

    Raises:
        AddressFormatError: ``cidr`` does not parse (exit 2).
        InvalidConfigError: a family the cluster lacks, an overlap with a
            range of the family, or the store cannot keep added ranges (exit 2).
        CLIError: ``service`` on a cluster without a Service range (exit 2).
        StoreUnavailableError: the store could not be reached (exit 5).

    Complexity:
        As the allocator's ``add_range``, plus one store transaction.
    """
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> dict[str, Any]:
        side = "services" if service else "nodes"
        alloc = _services(cluster, where) if service else cluster.nodes
        added = alloc.add_range(cidr)
        family = IPFamily.IPv4 if added.version == 4 else IPFamily.IPv6
        return {
            "cidr": str(added),
            "kind": _KINDS[side][0],
            "family": str(family),
            "ranges": [str(r) for r in alloc.ranges(family)],
        }

    result, changed = _change(where, act)
    if as_json:
        text = to_json(result)
    else:
        what = "Service range" if service else "cluster CIDR"
        text = (
            f"added the {result['family']} {what} {result['cidr']}: {', '.join(result['ranges'])}"
        )
    return Output(text, saved=where.shown if changed else None)


def _json_counts(data: Any) -> Any:
    """``stats()`` with counts beyond 2**53 as decimal strings (the CLI's JSON rule)."""
    if isinstance(data, dict):
        return {key: _json_counts(value) for key, value in data.items()}
    if isinstance(data, int) and not isinstance(data, bool):
        return write_int(data)
    return data


def run_stats(
    state_path: str | None = None, *, store_url: str | None = None, as_json: bool = False
) -> Output:
    """Both allocators' ``stats()``: per family capacity, used, free, reserved, cooling.

    ``--json`` gives ``{"nodes": stats, "services": stats | null}`` (null
    without a Service range), each as the library's ``stats()`` (its
    ``totals`` count this process's calls: nothing in a CLI run). The text
    is one row per allocator and family, with the family's ranges.

    Raises:
        StoreUnavailableError: the store could not be reached (exit 5).

    Complexity:
        O(families), plus opening the store.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> print(run_stats(os.path.join(folder.name, "ipam.db")))  # doctest: +NORMALIZE_WHITESPACE
    RANGE        FAMILY       CAPACITY  USED           FREE  RESERVED  COOLING  CIDRS
    node CIDRs   IPv4              256     0            256         0        0  10.244.0.0/16
    node CIDRs   IPv6    1099511627776     0  1099511627776         0        0  fc00::/24
    Service IPs  IPv4          1048574     0        1048574         0        0  10.96.0.0/12
    Service IPs  IPv6            65535     0          65535         0        0  fd00:10:96::/112
    >>> folder.cleanup()
    """
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> tuple[dict[str, Any], bool]:
        found: dict[str, Any] = {"nodes": None, "services": None}
        ranges: dict[tuple[str, str], list[str]] = {}
        for side in ("nodes", "services"):
            if side == "services" and not cluster.config.service_cidrs:
                continue
            alloc = getattr(cluster, side)
            found[side] = alloc.stats()
            for family in families(cluster.config):
                if str(family) in found[side]:
                    ranges[side, str(family)] = [str(r) for r in alloc.ranges(family)]
        return {"stats": found, "ranges": ranges}, False

    result, _ = on_store(where, act)
    stats, ranges = result["stats"], result["ranges"]
    if as_json:
        return Output(to_json(_json_counts(stats)))
    rows = []
    for side, (_, label) in _KINDS.items():
        for family, counts in (stats[side] or {}).items():
            if family == "totals":
                continue
            rows.append(
                [
                    label,
                    family,
                    *(counts[k] for k in ("capacity", "used", "free", "reserved", "cooling")),
                    ", ".join(ranges[side, family]),
                ]
            )
    headers = ["RANGE", "FAMILY", "CAPACITY", "USED", "FREE", "RESERVED", "COOLING", "CIDRS"]
    return Output(format_table(headers, rows))


# ------------------------------------------------------------------ click


def add_space_commands(cli: click.Group) -> None:
    """Wire ``reserve``, ``unreserve``, ``add-range`` and ``stats`` into ``cli``.

    Complexity:
        O(1).
    """
    import click

    @cli.command("reserve")
    @json_option
    @store_options
    @click.option("--reason", "reason", default="", metavar="TEXT", help="Why (kept with it).")
    @click.argument("value", metavar="RANGE")
    def reserve(
        value: str, reason: str, as_json: bool, state_path: str | None, store_url: str | None
    ) -> None:
        """Set RANGE (a CIDR, an address or FIRST-LAST) aside: nothing is handed out from it."""
        emit(run_reserve(value, state_path, store_url=store_url, reason=reason, as_json=as_json))

    @cli.command("unreserve")
    @json_option
    @store_options
    @click.argument("value", metavar="RANGE")
    def unreserve(value: str, as_json: bool, state_path: str | None, store_url: str | None) -> None:
        """Free the reserved slots in RANGE (a no-op where nothing is reserved)."""
        emit(run_unreserve(value, state_path, store_url=store_url, as_json=as_json))

    @cli.command("add-range")
    @json_option
    @store_options
    @click.option(
        "--service", "service", is_flag=True, help="A Service range (default: a cluster CIDR)."
    )
    @click.argument("cidr", metavar="CIDR")
    def add_range(
        cidr: str, service: bool, as_json: bool, state_path: str | None, store_url: str | None
    ) -> None:
        """Grow a family with another cluster CIDR (or, with --service, Service range)."""
        emit(run_add_range(cidr, state_path, store_url=store_url, service=service, as_json=as_json))

    @cli.command("stats")
    @json_option
    @store_options
    def stats(as_json: bool, state_path: str | None, store_url: str | None) -> None:
        """Capacity, used, free, reserved and cooling slots per allocator and family."""
        emit(run_stats(state_path, store_url=store_url, as_json=as_json))
