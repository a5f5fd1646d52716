"""The maps and forecasts of ``show --svg/--html/--forecast`` and ``plan --nodes-per-day``.

Plain functions of a :class:`~dualstack_ipam.ClusterConfig` and its
allocators: they parse the rate options, write the files asked for and
return the text to print; click wiring and the state file stay in
:mod:`~dualstack_ipam.cli.app`, :mod:`~dualstack_ipam.cli.commands`
(``plan``) and :mod:`~dualstack_ipam.cli.show`. The maps are
:func:`dualstack_ipam.viz.occupancy_svg`'s, the forecast
:func:`dualstack_ipam.forecast.forecast`'s.

>>> from dualstack_ipam import ClusterConfig
>>> config = ClusterConfig("10.0.0.0/16", "10.96.0.0/24")
>>> print(forecast_options(config, nodes_per_day="16", services_per_day="IPv4=2",
...                        now=datetime.date(2026, 1, 1)))  # doctest: +NORMALIZE_WHITESPACE
Forecast from 2026-01-01 at constant rates per day (linear model)
FAMILY  RANGE        CIDR          CAPACITY  USED  PER DAY  DAYS LEFT  RUNS OUT
IPv4    node CIDRs   10.0.0.0/16   256       0     16       16         2026-01-17
IPv4    Service IPs  10.96.0.0/24  254       0     2        127        2026-05-08
"""

from __future__ import annotations

import datetime
import html
import os
from collections.abc import Mapping, Sequence
from typing import Any

from dualstack_ipam.cli.render import describe
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.forecast import Forecast, forecast
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.viz import occupancy_svg

__all__ = [
    "cluster_svg",
    "demo_cluster",
    "forecast_options",
    "html_page",
    "maps_text",
    "parse_rate",
    "write_demo_map",
    "write_maps",
]

Rate = int | float


def _number(text: str, option: str, whole: str) -> Rate:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise InvalidConfigError(
            f"{option} takes a number of at least 0 per day, or FAMILY=N,..., got {whole!r}",
            value=whole,
        )
    return int(value) if value.is_integer() and "." not in text else value


def parse_rate(text: str, option: str = "--services-per-day") -> Rate | dict[str, Rate]:
    """A rate option's value: ``"5"``, ``"2.5"``, or by family ``"IPv4=5,IPv6=1"``.

    Raises:
        InvalidConfigError: anything else (the CLI exits 2), naming ``option``.

    Complexity:
        O(len(text)).

    >>> parse_rate("5"), parse_rate("0.5"), parse_rate("IPv4=5, IPv6=0.5")
    (5, 0.5, {'IPv4': 5, 'IPv6': 0.5})
    """
    if "=" not in text:
        return _number(text.strip(), option, text)
    rates: dict[str, Rate] = {}
    for part in text.split(","):
        family, sep, value = part.partition("=")
        family = family.strip()
        if not sep or family not in ("IPv4", "IPv6") or family in rates:
            raise InvalidConfigError(
                f"{option} takes N or IPv4=N,IPv6=N (each family once), got {text!r}",
                value=text,
            )
        rates[family] = _number(value.strip(), option, text)
    return rates


def _allocators(
    nodes: NodeCIDRAllocator, services: ServiceIPAllocator | None
) -> tuple[NodeCIDRAllocator | ServiceIPAllocator, ...]:
    return (nodes,) if services is None else (nodes, services)


def cluster_svg(
    nodes: NodeCIDRAllocator, services: ServiceIPAllocator | None, *, width: int = 640
) -> str:
    """One SVG with a panel per node range, then per Service range (``show --svg``).

    Complexity:
        O(runs + cells) per range.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> cluster_svg(NodeCIDRAllocator(ClusterConfig("10.0.0.0/16")), None).count('class="panel"')
    1
    """
    return occupancy_svg(_allocators(nodes, services), width=width)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('-' if c is None else str(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _usage_rows(
    config: ClusterConfig, nodes: NodeCIDRAllocator, services: ServiceIPAllocator | None
) -> list[list[object]]:
    rows: list[list[object]] = []
    for family in config.families:
        counts = (nodes.capacity(family), nodes.reserved(family), nodes.used(family))
        rows.append(
            [
                str(family),
                "node CIDRs",
                str(config.cluster_cidr(family)),
                *counts,
                nodes.free(family),
            ]
        )
    if services is not None:
        for family in config.service_families:
            rows.append(
                [
                    str(family),
                    "Service IPs",
                    str(config.service_cidr(family)),
                    services.capacity(family),
                    0,
                    services.used(family),
                    services.free(family),
                ]
            )
    return rows


def _forecast_rows(result: Forecast) -> list[list[object]]:
    return [
        [str(e.family), e.label, str(e.cidr), e.capacity, e.used, e.rate, e.days_left, e.when]
        for e in result
    ]


_CSS = """
body { font: 14px/1.4 sans-serif; margin: 24px; color: #222; background: #fff; }
table { border-collapse: collapse; margin: 8px 0 24px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #f2f2f2; }
.maps svg { display: block; margin: 8px 0 24px; }
"""


def html_page(
    config: ClusterConfig,
    nodes: NodeCIDRAllocator,
    services: ServiceIPAllocator | None,
    *,
    forecast_result: Forecast | None = None,
    width: int = 640,
) -> str:
    """One self-contained HTML page: usage, forecast, the maps, nodes and Services.

    Nothing is loaded from elsewhere (the SVG and the style are inline), so
    the file can be mailed or attached to a ticket as it is. All text is
    HTML-escaped.

    Complexity:
        O(nodes + Services + runs + cells).

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> config = ClusterConfig("10.0.0.0/16")
    >>> page = html_page(config, NodeCIDRAllocator(config), None)
    >>> page.startswith("<!DOCTYPE html>"), page.count("<svg"), "<h2>Occupancy maps</h2>" in page
    (True, 1, True)
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>dualstack-ipam: {html.escape(', '.join(map(str, config.cluster_cidrs)))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>dualstack-ipam</h1>",
        f"<p>{html.escape(describe(config))}</p>",
        "<h2>Usage</h2>",
        _table(
            ["FAMILY", "RANGE", "CIDR", "CAPACITY", "RESERVED", "USED", "FREE"],
            _usage_rows(config, nodes, services),
        ),
    ]
    if forecast_result is not None:
        parts += [
            f"<h2>Forecast from {forecast_result.today.isoformat()} (linear model)</h2>",
            _table(
                ["FAMILY", "RANGE", "CIDR", "CAPACITY", "USED", "PER DAY", "DAYS LEFT", "RUNS OUT"],
                _forecast_rows(forecast_result),
            ),
        ]
    parts += [
        "<h2>Occupancy maps</h2>",
        f'<div class="maps">{cluster_svg(nodes, services, width=width)}</div>',
        "<h2>Nodes</h2>",
        _table(
            ["NODE", *(f"{f} POD CIDR" for f in config.families)],
            [[node, *map(str, cidrs)] for node, cidrs in sorted(nodes.items())],
        ),
    ]
    if services is not None:
        parts += [
            "<h2>Services</h2>",
            _table(
                ["SERVICE", "CLUSTER IPS"],
                [[key, ", ".join(map(str, held))] for key, held in sorted(services.items())],
            ),
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        # A failed write() or close() names no file: name it, for the error line.
        raise OSError(exc.errno, exc.strerror or str(exc), path) from exc


def forecast_options(
    config: ClusterConfig,
    nodes_per_day: str = "0",
    services_per_day: str = "0",
    *,
    used: Any = None,
    now: datetime.date | None = None,
) -> Forecast:
    """The forecast the options ``--nodes-per-day`` and ``--services-per-day`` ask for.

    ``used`` as for :func:`~dualstack_ipam.forecast.forecast` (None: an
    empty cluster, as ``plan`` assumes).

    Raises:
        InvalidConfigError: a bad rate, quoted with its option (exit 2);
            ``--nodes-per-day`` takes one number, not a rate by family.
        FamilyNotConfiguredError: a Service rate for a family without a
            Service range (exit 2).

    Complexity:
        O(len(nodes_per_day) + len(services_per_day)).

    >>> forecast_options(ClusterConfig("10.0.0.0/16"), "IPv4=1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: --nodes-per-day takes one number ... got 'IPv4=1'
    """
    node_rate = parse_rate(nodes_per_day, "--nodes-per-day")
    if isinstance(node_rate, Mapping):
        raise InvalidConfigError(
            f"--nodes-per-day takes one number (a node takes a CIDR of every family), "
            f"got {nodes_per_day!r}",
            value=nodes_per_day,
        )
    return forecast(
        config,
        nodes_per_day=node_rate,
        services_per_day=parse_rate(services_per_day, "--services-per-day"),
        now=now,
        used=used,
    )


def write_maps(
    config: ClusterConfig,
    nodes: NodeCIDRAllocator,
    services: ServiceIPAllocator | None,
    *,
    svg: str | None = None,
    html_path: str | None = None,
    show_forecast: bool = False,
    nodes_per_day: str = "0",
    services_per_day: str = "0",
    now: datetime.date | None = None,
) -> tuple[dict[str, str], Forecast | None]:
    """Write the files ``show --svg FILE --html FILE`` asks for; the forecast if asked.

    The forecast counts from what the allocators hold, at the rates given
    (``--nodes-per-day``, ``--services-per-day``; 0 by default: "never"). It
    is made first, so a bad rate writes no file.

    Returns:
        The files written (``"svg"`` / ``"html"`` -> path), and the
        :class:`~dualstack_ipam.forecast.Forecast` or None.

    Raises:
        InvalidConfigError: a bad rate (exit 2).
        OSError: a file cannot be written.

    Complexity:
        O(nodes + Services + runs + cells).
    """
    result = None
    if show_forecast:
        result = forecast_options(
            config, nodes_per_day, services_per_day, used=_allocators(nodes, services), now=now
        )
    files: dict[str, str] = {}
    if svg is not None:
        _write(svg, cluster_svg(nodes, services))
        files["svg"] = svg
    if html_path is not None:
        _write(html_path, html_page(config, nodes, services, forecast_result=result))
        files["html"] = html_path
    return files, result


def maps_text(files: Mapping[str, str], result: Forecast | None) -> str:
    """What ``show`` prints after :func:`write_maps`: a line per file, then the forecast.

    Complexity:
        O(number of files).

    >>> maps_text({"svg": "map.svg"}, None)
    'Wrote map.svg (SVG)'
    """
    lines = [f"Wrote {path} ({kind.upper()})" for kind, path in files.items()]
    if result is not None:
        lines += ["", str(result)] if lines else [str(result)]
    return "\n".join(lines)


def demo_cluster() -> tuple[ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator]:
    """The cluster ``dualstack-ipam demo`` builds: its nodes and the seed's Services.

    For the docs' quickstart map. Needs PyYAML (the seed's manifests are YAML).

    Complexity:
        O(1).

    >>> config, nodes, services = demo_cluster()
    >>> len(nodes), len(services)
    (3, 3)
    """
    # Imported here: the demo module imports the commands, which import this one.
    from dualstack_ipam.cli.demo import build_demo

    nodes, services, _ = build_demo()
    return nodes.config, nodes, services


def write_demo_map(path: str | os.PathLike[str], *, width: int = 640) -> None:
    """Write the demo cluster's occupancy maps to ``path`` (the docs build calls it).

    Complexity:
        O(cells).
    """
    _, nodes, services = demo_cluster()
    with open(path, "w", encoding="utf-8") as file:
        file.write(cluster_svg(nodes, services, width=width))
