"""``dualstack-ipam show``: what the state holds, and its maps and forecast on request.

The tables (nodes, Services, usage per family) come from the store;
``--svg FILE`` and ``--html FILE`` write the occupancy maps and the
self-contained page, ``--forecast`` adds the exhaustion forecast at the
rates given (:mod:`dualstack_ipam.cli.maps` does both). ``show`` changes
nothing in an existing store. On a missing one it runs first on an
in-memory cluster (:func:`~dualstack_ipam.cli.store.on_store`): a rate that
does not validate or a map file that cannot be written ends the command
with exit 2 before the store is created (1 and 2 mean nothing changed).
"""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cli.ground import CLIError, Output
from dualstack_ipam.cli.maps import maps_text, write_maps
from dualstack_ipam.cli.render import (
    describe,
    families,
    format_table,
    node_table,
    to_json,
    usage_table,
)
from dualstack_ipam.cli.store import Target, on_store, target
from dualstack_ipam.forecast import Forecast
from dualstack_ipam.snapshot import write_int

if TYPE_CHECKING:
    from dualstack_ipam.durable import Cluster

__all__ = ["run_show"]


def _services(cluster: Cluster) -> Any:
    """The cluster's Service allocator, or None when it has no Service range."""
    return cluster.services if cluster.config.service_cidrs else None


def _usage(cluster: Cluster) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    services = _services(cluster)
    for family in families(cluster.config):
        nodes = None
        if family in cluster.config.families:
            nodes = {
                "capacity": write_int(cluster.nodes.capacity(family)),
                "reserved": write_int(cluster.nodes.reserved(family)),
                "used": write_int(cluster.nodes.used(family)),
                "free": write_int(cluster.nodes.free(family)),
            }
        ips = None
        if services is not None and family in cluster.config.service_families:
            ips = {
                "capacity": write_int(services.capacity(family)),
                "used": write_int(services.used(family)),
                "free": write_int(services.free(family)),
            }
        usage[str(family)] = {"node_cidrs": nodes, "service_ips": ips}
    return usage


def run_show(
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
    svg: str | None = None,
    html_path: str | None = None,
    show_forecast: bool = False,
    nodes_per_day: str | None = None,
    services_per_day: str | None = None,
    now: datetime.date | None = None,
) -> Output:
    """What the store holds: nodes, Services, and usage per family.

    A missing store is created with the default cluster, as for every
    stateful command (the one case where ``show`` saves something); an
    existing one is not changed. ``svg`` and ``html_path`` name files to
    write the occupancy maps and the self-contained HTML page to;
    ``show_forecast`` (implied by a rate) adds the forecast from what the
    state holds at ``nodes_per_day`` / ``services_per_day`` (the options'
    text, 0 when absent: "never"), counted from ``now`` (today by default).
    With ``as_json`` the object gains ``files`` (kind -> path) when a file
    was asked for, and ``forecast`` with the forecast.

    Raises:
        InvalidConfigError: a bad rate (exit 2).
        FamilyNotConfiguredError: a Service rate for a family without a
            Service range (exit 2).
        CLIError: a map file cannot be written, or is the store file
            (exit 2; nothing saved).
        StoreError: the store file is corrupt or foreign (exit 2).
        StoreUnavailableError: the store stayed locked (exit 5).

    Complexity:
        O(nodes + Services) read from the store, plus the maps'
        O(runs + cells) when asked for.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> from dualstack_ipam.cli import run_allocate_node
    >>> _ = run_allocate_node("node-1", path)
    >>> import json; json.loads(run_show(path, as_json=True))["nodes"]
    {'node-1': ['10.244.0.0/24', 'fc00::/64']}
    >>> svg = os.path.join(folder.name, "map.svg")
    >>> print(run_show(path, svg=svg).splitlines()[-1] == f"Wrote {svg} (SVG)")
    True
    >>> folder.cleanup()
    """
    show_forecast = show_forecast or nodes_per_day is not None or services_per_day is not None
    where = target(state_path, store_url)
    _check_map_paths(where, svg, html_path)

    def act(cluster: Cluster) -> tuple[str, bool]:
        files: dict[str, str] = {}
        outlook = None
        if svg is not None or html_path is not None or show_forecast:
            try:
                files, outlook = write_maps(
                    cluster.config,
                    cluster.nodes,
                    _services(cluster),
                    svg=svg,
                    html_path=html_path,
                    show_forecast=show_forecast,
                    nodes_per_day=nodes_per_day or "0",
                    services_per_day=services_per_day or "0",
                    now=now,
                )
            except OSError as exc:
                raise CLIError(
                    f"could not write the map file {exc.filename!r} "
                    f"({exc.strerror or type(exc).__name__}); nothing was changed"
                ) from None
        return _show_text(cluster, where, as_json=as_json, files=files, outlook=outlook), False

    text, created = on_store(where, act)
    return Output(text, saved=where.shown if created else None)


def _check_map_paths(where: Target, *maps: str | None) -> None:
    """Refuse a map file that is the store file or SQLite's files beside it."""
    if where.path is None:
        return
    store = os.path.realpath(where.path)
    for path in maps:
        if path is not None and os.path.realpath(path) in (store, store + "-wal", store + "-shm"):
            raise CLIError(
                f"the map file {path!r} is the store {where.shown!r} (or its log); "
                "nothing was changed"
            )


def _show_text(
    cluster: Cluster,
    where: Target,
    *,
    as_json: bool,
    files: dict[str, str],
    outlook: Forecast | None,
) -> str:
    nodes = sorted(cluster.nodes.items())
    allocator = _services(cluster)
    services = [] if allocator is None else list(allocator.items())
    usage = _usage(cluster)
    config = cluster.config
    if as_json:
        data: dict[str, Any] = {
            "config": config.to_dict(),
            "nodes": {node: [str(c) for c in cidrs] for node, cidrs in nodes},
            "services": {key: [str(a) for a in held] for key, held in services},
            "usage": usage,
        }
        if files:
            data["files"] = files
        if outlook is not None:
            data["forecast"] = outlook.to_dict()
        return to_json(data)
    parts = [f"State {where.shown}: {describe(config)}", ""]
    parts.append(node_table(config, nodes) if nodes else "No node holds a pod CIDR.")
    parts.append("")
    if services:
        parts.append(
            format_table(
                ["SERVICE", "CLUSTER IPS"],
                [[key, ", ".join(map(str, held))] for key, held in services],
            )
        )
    else:
        parts.append("No Service holds a cluster IP.")
    parts += ["", usage_table(usage)]
    if files or outlook is not None:
        parts += ["", maps_text(files, outlook)]
    return "\n".join(parts)
