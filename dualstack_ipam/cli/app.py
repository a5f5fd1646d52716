"""The ``dualstack-ipam`` command line (also ``python -m dualstack_ipam``).

Usage (see ``docs/cli.md`` for every command, flag and exit code)::

    dualstack-ipam demo                      # the seed's scenario, on the default cluster
    dualstack-ipam plan --cluster-cidr=10.244.0.0/16,fc00::/24 \\
        --service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112 [--json] \\
        [--nodes-per-day N] [--services-per-day N|IPv4=N,IPv6=N]
    dualstack-ipam init FLAGS... [--state FILE | --store URL]
    dualstack-ipam allocate-node NAME [--state FILE | --store URL] [--json]
    dualstack-ipam release-node NAME
    dualstack-ipam allocate-service -f service.yaml     # "-f -" reads stdin
    dualstack-ipam release-service -f service.yaml | NAMESPACE/NAME
    dualstack-ipam show [--json] [--svg FILE] [--html FILE] [--forecast]
    dualstack-ipam export [--output FILE] | import FILE | log [--since N] | migrate
    dualstack-ipam reconcile -f TRUTH [--repair] [--leak-grace N]  # kubectl get -o yaml
    dualstack-ipam reserve RANGE [--reason TEXT] | unreserve RANGE | add-range CIDR [--service]
    dualstack-ipam stats [--json]

Exit codes: 0 done; 1 refused by the current state (a range exhausted, an
address or CIDR taken, a manifest asking for a taken cluster IP); 2 bad
input (flags, manifests, a corrupt, foreign or unreadable store file, a
Service command on a cluster without a Service range, output that cannot
be written when nothing was changed); 3 the change was saved but its
output could not be written (a closed pipe, a full disk); 4 ``reconcile``
found differences that remain after the call; 5 the store was
unavailable (locked by another process past the busy timeout). 1, 2 and 5
mean nothing changed. Errors are one line on stderr, ``dualstack-ipam: error: ...``,
never a traceback (:mod:`~dualstack_ipam.cli.reporting`).

The library never imports click or PyYAML: this module imports them only
when :func:`main` (or :func:`build_cli`) runs, and without them ``main``
says which extra to install and exits 2. The commands themselves are plain
functions (``run_plan``, ``run_allocate_node``, ...) that return the text
to print; click only parses the command line. They live in private modules
(:mod:`~dualstack_ipam.cli.commands`, :mod:`~dualstack_ipam.cli.show`,
:mod:`~dualstack_ipam.cli.service_commands`, :mod:`~dualstack_ipam.cli.demo`, with the
maps and forecasts of :mod:`~dualstack_ipam.cli.maps`, printing through
:mod:`~dualstack_ipam.cli.render`) and are re-exported here, which is where
scripts import them from. This module holds the click wiring and :func:`main`;
every error becomes one stderr line and an exit code in
:mod:`~dualstack_ipam.cli.reporting`.

>>> code = main(["plan", "--cluster-cidr=10.0.0.0/16", "--node-cidr-mask-size=20", "--json"])
... # doctest: +ELLIPSIS
{
  "config": {...},
  "max_nodes": 16,
  "families": {
    "IPv4": {
      "nodes": 16,
      "addresses_per_node": 4096,
      "service_ips": 0
    }
  },
  "component_flags": {...}
}
>>> code
0
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cli.commands import (
    DEFAULT_CONFIG,
    DEFAULT_FLAGS,
    PROG,
    CLIError,
    Output,
    exit_code_for,
    run_allocate_node,
    run_init,
    run_plan,
    run_release_node,
)
from dualstack_ipam.cli.demo import DEMO_NODES as DEMO_NODES
from dualstack_ipam.cli.demo import DEMO_SEED as DEMO_SEED
from dualstack_ipam.cli.demo import SEED_SERVICES as SEED_SERVICES
from dualstack_ipam.cli.demo import run_demo
from dualstack_ipam.cli.manifests import parse_manifests
from dualstack_ipam.cli.options import (
    PASS_FLAGS,
    file_option,
    flags_argument,
    ignore_unknown_option,
    json_option,
    rate_options,
    store_options,
)
from dualstack_ipam.cli.reconcile_command import add_reconcile_command, run_reconcile
from dualstack_ipam.cli.render import format_table
from dualstack_ipam.cli.reporting import emit, guarded
from dualstack_ipam.cli.service_commands import run_allocate_service, run_release_service
from dualstack_ipam.cli.show import run_show
from dualstack_ipam.cli.space_commands import (
    add_space_commands,
    run_add_range,
    run_reserve,
    run_stats,
    run_unreserve,
)
from dualstack_ipam.cli.store_commands import (
    add_store_commands,
    run_export,
    run_import,
    run_log,
    run_migrate,
)

if TYPE_CHECKING:
    import click

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_FLAGS",
    "PROG",
    "CLIError",
    "Output",
    "build_cli",
    "exit_code_for",
    "format_table",
    "main",
    "parse_manifests",
    "run_add_range",
    "run_allocate_node",
    "run_allocate_service",
    "run_demo",
    "run_export",
    "run_import",
    "run_init",
    "run_log",
    "run_migrate",
    "run_plan",
    "run_reconcile",
    "run_release_node",
    "run_release_service",
    "run_reserve",
    "run_show",
    "run_stats",
    "run_unreserve",
]

# ------------------------------------------------------------------ click


def _group_class() -> type[click.Group]:
    """A click group whose ``main`` never raises: see :func:`.reporting.guarded`."""
    import click

    class Group(click.Group):
        def main(
            self,
            args: Sequence[str] | None = None,
            prog_name: str | None = None,
            complete_var: str | None = None,
            standalone_mode: bool = True,
            windows_expand_args: bool = True,
            **extra: Any,
        ) -> Any:
            # A bare "dualstack-ipam" shows the help, as --help does.
            argv = list(sys.argv[1:] if args is None else args) or ["--help"]
            code = guarded(
                lambda: click.Group.main(
                    self,
                    argv,
                    prog_name or PROG,
                    complete_var,
                    standalone_mode=False,
                    windows_expand_args=windows_expand_args,
                    **extra,
                )
            )
            if standalone_mode:
                sys.exit(code)
            return code

    return Group


def _add_cluster_commands(cli: click.Group) -> None:
    """``demo``, ``plan``, ``init`` and ``show``: the cluster as a whole."""
    import click

    @cli.command()
    @json_option
    def demo(as_json: bool) -> None:
        """The seed's scenario on the default cluster: nodes and three Services."""
        emit(run_demo(as_json=as_json))

    @cli.command(context_settings=PASS_FLAGS)
    @json_option
    @click.option(
        "--with-feature-gate",
        "feature_gate",
        is_flag=True,
        help="Render --feature-gates=IPv6DualStack=true for every component (1.16-1.22).",
    )
    @ignore_unknown_option
    @rate_options
    @flags_argument
    def plan(
        flags: tuple[str, ...],
        as_json: bool,
        feature_gate: bool,
        ignore_unknown: bool,
        nodes_per_day: str | None,
        services_per_day: str | None,
    ) -> None:
        """Validate kube-controller-manager flags; print capacity and component flags.

        FLAGS: --cluster-cidr, --service-cluster-ip-range, --node-cidr-mask-size,
        --node-cidr-mask-size-ipv4/-ipv6, --allocate-node-cidrs, --feature-gates;
        any other flag is an error unless --ignore-unknown is given. With
        --nodes-per-day or --services-per-day, also when each range of the
        empty cluster runs out at those rates.
        """
        emit(
            run_plan(
                flags,
                as_json=as_json,
                feature_gate=feature_gate,
                ignore_unknown=ignore_unknown,
                nodes_per_day=nodes_per_day,
                services_per_day=services_per_day,
            )
        )

    @cli.command(context_settings=PASS_FLAGS)
    @json_option
    @store_options
    @ignore_unknown_option
    @flags_argument
    def init(
        flags: tuple[str, ...],
        as_json: bool,
        state_path: str | None,
        store_url: str | None,
        ignore_unknown: bool,
    ) -> None:
        """Create the store for the cluster FLAGS describe (never overwrites)."""
        emit(
            run_init(
                flags,
                state_path,
                store_url=store_url,
                as_json=as_json,
                ignore_unknown=ignore_unknown,
            )
        )

    @cli.command()
    @json_option
    @store_options
    @click.option("--svg", "svg", metavar="FILE", help="Write the occupancy maps (SVG) to FILE.")
    @click.option(
        "--html",
        "html_path",
        metavar="FILE",
        help="Write one self-contained page (tables, forecast, maps) to FILE.",
    )
    @click.option(
        "--forecast",
        "show_forecast",
        is_flag=True,
        help="Add when each range runs out at the rates given (0 by default: never).",
    )
    @rate_options
    def show(
        as_json: bool,
        state_path: str | None,
        store_url: str | None,
        svg: str | None,
        html_path: str | None,
        show_forecast: bool,
        nodes_per_day: str | None,
        services_per_day: str | None,
    ) -> None:
        """Print the nodes, the Services and the usage per family; maps and forecast."""
        emit(
            run_show(
                state_path,
                store_url=store_url,
                as_json=as_json,
                svg=svg,
                html_path=html_path,
                show_forecast=show_forecast,
                nodes_per_day=nodes_per_day,
                services_per_day=services_per_day,
            )
        )


def _add_node_commands(cli: click.Group) -> None:
    """``allocate-node`` and ``release-node``."""
    import click

    @cli.command("allocate-node")
    @json_option
    @store_options
    @click.argument("name")
    def allocate_node(
        name: str, as_json: bool, state_path: str | None, store_url: str | None
    ) -> None:
        """Give node NAME one pod CIDR per family (idempotent)."""
        emit(run_allocate_node(name, state_path, store_url=store_url, as_json=as_json))

    @cli.command("release-node")
    @json_option
    @store_options
    @click.argument("name")
    def release_node(
        name: str, as_json: bool, state_path: str | None, store_url: str | None
    ) -> None:
        """Free node NAME's pod CIDRs (a no-op if it holds none)."""
        emit(run_release_node(name, state_path, store_url=store_url, as_json=as_json))


def _add_service_commands(cli: click.Group) -> None:
    """``allocate-service`` and ``release-service``."""
    import click

    @cli.command("allocate-service")
    @json_option
    @store_options
    @file_option
    def allocate_service(
        sources: tuple[str, ...], as_json: bool, state_path: str | None, store_url: str | None
    ) -> None:
        """Allocate cluster IPs for the Service manifests in FILE, all or nothing."""
        if not sources:
            raise click.UsageError("Missing option '-f' / '--filename'.")
        emit(run_allocate_service(sources, state_path, store_url=store_url, as_json=as_json))

    @cli.command("release-service")
    @json_option
    @store_options
    @file_option
    @click.argument("key", required=False, metavar="[NAMESPACE/NAME]")
    def release_service(
        key: str | None,
        sources: tuple[str, ...],
        as_json: bool,
        state_path: str | None,
        store_url: str | None,
    ) -> None:
        """Release the Services in FILE, or NAMESPACE/NAME (no-op when not held)."""
        emit(run_release_service(key, sources, state_path, store_url=store_url, as_json=as_json))


def build_cli() -> click.Group:
    """The click command group; imports click and PyYAML (ImportError without them).

    Its ``main`` never raises nor prints a traceback: errors become one line
    on stderr and an exit code (see :func:`exit_code_for`). With
    ``standalone_mode=False`` it returns the exit code instead of exiting.

    Complexity:
        O(1).

    >>> build_cli().main(["plan", "--bogus"], standalone_mode=False)
    2
    """
    import click
    import yaml  # noqa: F401  # fail here, before any command runs, without PyYAML

    from dualstack_ipam import __version__

    @click.group(
        name=PROG, cls=_group_class(), context_settings={"help_option_names": ["-h", "--help"]}
    )
    @click.version_option(__version__, prog_name=PROG)
    def cli() -> None:
        """IP address management for dual-stack (IPv4 + IPv6) Kubernetes-style clusters.

        Exit codes: 0 done, 1 refused by the current state (exhausted, taken),
        2 bad input, 3 the change was saved but its output could not be written,
        4 reconcile found differences that remain, 5 the store was unavailable.
        1, 2 and 5 mean nothing changed.
        """

    _add_cluster_commands(cli)
    _add_node_commands(cli)
    _add_service_commands(cli)
    add_store_commands(cli)
    add_reconcile_command(cli)
    add_space_commands(cli)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Without click or PyYAML it prints one line telling how to install them
    and returns 2.

    Complexity:
        O(1) plus the cost of the command run.

    >>> main(["plan", "--cluster-cidr=nonsense"])  # the error line goes to stderr
    2
    """
    try:
        cli = build_cli()
    except ImportError as exc:
        missing = exc.name or "a dependency"
        sys.stderr.write(
            f"{PROG}: error: the command line needs click and PyYAML ({missing} is not "
            "installed): pip install 'dualstack_ipam[cli]'\n"
        )
        return 2
    args = list(sys.argv[1:] if argv is None else argv)
    return int(cli.main(args, prog_name=PROG, standalone_mode=False))
