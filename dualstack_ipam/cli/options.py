"""The options the commands share, as click decorators (click imported when applied).

``--json``, ``--state FILE`` / ``--store URL``, ``-f FILE``, ``--ignore-unknown``, the rates
of the exhaustion forecast (``--nodes-per-day``, ``--services-per-day``),
and the kube-controller-manager flags of ``plan`` and ``init``; wired into
the commands by :mod:`dualstack_ipam.cli.app`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "PASS_FLAGS",
    "file_option",
    "flags_argument",
    "ignore_unknown_option",
    "json_option",
    "rate_options",
    "state_option",
    "store_options",
]

Decorated = TypeVar("Decorated", bound=Callable[..., Any])

PASS_FLAGS = {"ignore_unknown_options": True, "allow_extra_args": True}
"""Context settings of the commands that take kube-controller-manager flags:
unknown options pass through to them."""


def _option(*decls: str, **attrs: Any) -> Callable[[Decorated], Decorated]:
    """A click option, made when a command is declared (click is imported then)."""

    def apply(command: Decorated) -> Decorated:
        import click

        return click.option(*decls, **attrs)(command)

    names = " / ".join(d for d in decls if d.startswith("-"))
    apply.__doc__ = f"""Add the option {names} to a command.

    Complexity:
        O(1).
    """
    return apply


json_option = _option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
"""``--json``: machine-readable JSON on stdout (``as_json``)."""

state_option = _option(
    "--state",
    "state_path",
    default=None,
    metavar="FILE",
    help="The SQLite store file (default: dualstack-ipam.db; created with the default "
    "cluster if missing).",
)
"""``--state FILE``: the SQLite store file (``state_path``; None: the default one)."""

_store_option = _option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="The store as a URL (sqlite:///abs/path.db, sqlite:rel/path.db, memory://); "
    "instead of --state.",
)


def store_options(command: Decorated) -> Decorated:
    """``--state FILE`` and ``--store URL`` (one of them; ``state_path``, ``store_url``).

    Complexity:
        O(1).
    """
    return state_option(_store_option(command))


file_option = _option(
    "-f",
    "--filename",
    "sources",
    multiple=True,
    metavar="FILE",
    help="Service manifests, YAML or JSON ('-' for stdin); may be repeated.",
)
"""``-f`` / ``--filename FILE``, repeatable: Service manifests (``sources``)."""

ignore_unknown_option = _option(
    "--ignore-unknown",
    "ignore_unknown",
    is_flag=True,
    help="Skip the flags dualstack-ipam does not read (a whole "
    "kube-controller-manager command line).",
)
"""``--ignore-unknown``: skip the flags dualstack-ipam does not read."""

_nodes_per_day = _option(
    "--nodes-per-day",
    "nodes_per_day",
    default=None,
    metavar="N",
    help="Nodes added per day (each takes a CIDR of every family); adds the exhaustion forecast.",
)
_services_per_day = _option(
    "--services-per-day",
    "services_per_day",
    default=None,
    metavar="N|IPv4=N,IPv6=N",
    help="Services added per day (of the primary Service family), or a rate by "
    "family; adds the exhaustion forecast.",
)


def rate_options(command: Decorated) -> Decorated:
    """``--nodes-per-day N`` and ``--services-per-day N|IPv4=N,IPv6=N`` (text, or None).

    Complexity:
        O(1).
    """
    return _nodes_per_day(_services_per_day(command))


def flags_argument(command: Decorated) -> Decorated:
    """The kube-controller-manager flags, passed through unparsed (``flags``).

    Complexity:
        O(1).
    """
    import click

    return click.argument("flags", nargs=-1, type=click.UNPROCESSED)(command)
