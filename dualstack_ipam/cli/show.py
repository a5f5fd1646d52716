"""``dualstack-ipam show``: what the state holds, and its maps and forecast on request.

The tables (nodes, Services, usage per family) come from the state file;
``--svg FILE`` and ``--html FILE`` write the occupancy maps and the
self-contained page, ``--forecast`` adds the exhaustion forecast at the
rates given (:mod:`dualstack_ipam.cli.maps` does both). Everything runs
inside the state file's transaction, the map files included: a rate that
does not validate or a map file that cannot be written ends the command
with exit 2 before anything is saved, so a missing state file is not
created by a ``show`` that failed (1 and 2 mean nothing changed).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from dualstack_ipam.cli import state as _state
from dualstack_ipam.cli.commands import DEFAULT_CONFIG, CLIError, Output, saved_path
from dualstack_ipam.cli.maps import maps_text, write_maps
from dualstack_ipam.cli.render import (
    describe,
    families,
    format_table,
    node_table,
    to_json,
    usage_table,
)
from dualstack_ipam.forecast import Forecast
from dualstack_ipam.snapshot import write_int

__all__ = ["run_show"]


def _usage(state: _state.State) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    for family in families(state.config):
        nodes = None
        if family in state.config.families:
            nodes = {
                "capacity": write_int(state.nodes.capacity(family)),
                "reserved": write_int(state.nodes.reserved(family)),
                "used": write_int(state.nodes.used(family)),
                "free": write_int(state.nodes.free(family)),
            }
        ips = None
        if state.services is not None and family in state.config.service_families:
            ips = {
                "capacity": write_int(state.services.capacity(family)),
                "used": write_int(state.services.used(family)),
                "free": write_int(state.services.free(family)),
            }
        usage[str(family)] = {"node_cidrs": nodes, "service_ips": ips}
    return usage


def run_show(
    state_path: str,
    *,
    as_json: bool = False,
    svg: str | None = None,
    html_path: str | None = None,
    show_forecast: bool = False,
    nodes_per_day: str | None = None,
    services_per_day: str | None = None,
    now: datetime.date | None = None,
) -> Output:
    """What the state file holds: nodes, Services, and usage per family.

    A missing file is created with the default cluster, as for every
    stateful command (the one case where ``show`` saves something); an
    existing one is not rewritten. ``svg`` and ``html_path`` name files to
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
        CLIError: a map file cannot be written, or is the state file
            (exit 2; nothing saved).
        StateError: the state file is corrupt (exit 2).

    Complexity:
        O(size of the state file), plus the wait for its lock, plus the
        maps' O(runs + cells) when asked for.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "state.json")
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
    _check_map_paths(state_path, svg, html_path)
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        files: dict[str, str] = {}
        outlook = None
        if svg is not None or html_path is not None or show_forecast:
            # Inside the transaction: a failure here leaves the state as it was.
            try:
                files, outlook = write_maps(
                    state.config,
                    state.nodes,
                    state.services,
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
        text = _show_text(state, state_path, as_json=as_json, files=files, outlook=outlook)
    return Output(text, saved=saved_path(state, state_path))


def _check_map_paths(state_path: str, *maps: str | None) -> None:
    """Refuse a map file that is the state file or its lock: writing it would destroy them."""
    state = os.path.realpath(state_path)
    for path in maps:
        if path is not None and os.path.realpath(path) in (state, state + ".lock"):
            raise CLIError(
                f"the map file {path!r} is the state file {state_path!r} (or its lock); "
                "nothing was changed"
            )


def _show_text(
    state: _state.State,
    state_path: str,
    *,
    as_json: bool,
    files: dict[str, str],
    outlook: Forecast | None,
) -> str:
    nodes = sorted(state.nodes.items())
    services = [] if state.services is None else state.services.items()
    usage = _usage(state)
    config = state.config
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
    parts = [f"State {state_path}: {describe(config)}", ""]
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
