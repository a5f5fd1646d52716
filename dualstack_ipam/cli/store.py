"""Which store a command works on, and opening it without surprises.

``--state PATH`` names a SQLite file (default ``dualstack-ipam.db`` in the
current directory), ``--store URL`` any URL :func:`dualstack_ipam.open`
takes; giving both is bad input. Before SQLite sees a path, it is checked
(:func:`dualstack_ipam.store.sqlite_file.check_path`): an empty path, a
directory or a FIFO is exit 2 and creates nothing, a file that is not a
SQLite database is exit 2 and is left untouched.

A missing SQLite store is created with the default cluster, as the JSON
state file was — but never beside the old JSON state file
(``dualstack-ipam-state.json`` in the current directory or beside the
store): then the command stops with exit 2 and says to ``import`` it.

A command on a missing store first runs on an in-memory cluster of the
same config (:func:`on_store`): if it fails there, it fails before the
store file exists, so exits 1 and 2 still mean that nothing changed — no
file either. Only a run that succeeded there creates the store and runs
again on it.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from dualstack_ipam.cli.ground import DEFAULT_CONFIG, PROG, CLIError
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.store.sqlite_file import check_path

if TYPE_CHECKING:
    from dualstack_ipam.durable import Cluster

__all__ = [
    "DEFAULT_STORE_FILE",
    "LEGACY_STATE_FILE",
    "Target",
    "exists",
    "on_store",
    "open_store",
    "runs",
    "target",
]

DEFAULT_STORE_FILE = "dualstack-ipam.db"
"""The SQLite store the CLI uses when neither ``--state`` nor ``--store`` is given."""

LEGACY_STATE_FILE = "dualstack-ipam-state.json"
"""The JSON state file of dualstack-ipam before the store (``import`` reads it)."""

Result = TypeVar("Result")


@attrs.frozen
class Target:
    """The store a command works on.

    Attributes:
        url: what :func:`dualstack_ipam.open` is given.
        shown: how messages name it (the path or URL as the user wrote it).
        path: the SQLite file, or None for a store of another kind.
    """

    url: str
    shown: str
    path: str | None


def _sqlite_url(path: str) -> str:
    # Quoted: the URL parser unquotes, and '?', '#' or '%' in a file name
    # would otherwise read as settings, a fragment or an escape.
    return "sqlite://" + urllib.parse.quote(os.path.abspath(path), safe="/")


def _sqlite_path(url: str) -> str | None:
    from dualstack_ipam.durable.urls import parse_url

    parsed = parse_url(url)
    return parsed.path if parsed.scheme == "sqlite" else None


def target(state_path: str | None, store_url: str | None) -> Target:
    """The store named by ``--state PATH`` or ``--store URL`` (the default file if neither).

    Raises:
        CLIError: both were given (exit 2).
        InvalidConfigError: the path is empty, a directory, a FIFO or
            another non-regular file, or its folder is missing (exit 2).
        StoreError: the file is not a SQLite database (exit 2).

    Complexity:
        O(1) system calls.

    >>> target(None, "memory://")
    Target(url='memory://', shown='memory://', path=None)
    >>> target("", None)
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: a store path must be a non-empty file name, got ''
    """
    if state_path is not None and store_url is not None:
        raise CLIError("--state and --store name the store twice: give one of them")
    if store_url is not None:
        path = _sqlite_path(store_url)
        if path is not None:
            check_path(path)
        return Target(store_url, store_url, path)
    path = DEFAULT_STORE_FILE if state_path is None else state_path
    check_path(path)
    return Target(_sqlite_url(path), path, path)


def exists(where: Target) -> bool | None:
    """Whether the SQLite store exists; None for a store of another kind (unknown).

    Raises:
        InvalidConfigError, StoreError: as :func:`target` (the path changed since).

    Complexity:
        O(1) system calls.
    """
    if where.path is None:
        return None
    return check_path(where.path)[1]


def runs(where: Target) -> int:
    """How many times :func:`on_store` runs its action: 2 for a missing SQLite store, else 1.

    A missing store is tried on an in-memory store first (progress bars
    count both runs).

    Raises:
        InvalidConfigError, StoreError: as :func:`target`.

    Complexity:
        O(1) system calls.

    >>> runs(target(None, "memory://"))
    1
    """
    return 2 if exists(where) is False else 1


def _legacy_guard(where: Target) -> None:
    """Refuse to start an empty store beside the user's old JSON state file."""
    assert where.path is not None
    folder = os.path.dirname(os.path.abspath(where.path))
    for candidate in (LEGACY_STATE_FILE, os.path.join(folder, LEGACY_STATE_FILE)):
        if os.path.lexists(candidate):
            option = "--store" if where.shown.startswith("sqlite:") else "--state"
            into = "" if where.shown == DEFAULT_STORE_FILE else f" {option} {where.shown}"
            raise CLIError(
                f"there is no store {where.shown!r} but there is the JSON state file "
                f"{candidate!r} of an older {PROG}: move it into a store with "
                f"'{PROG} import {candidate}{into}' (nothing was changed)"
            )


def open_store(
    url: str, config: ClusterConfig | None = None, settings: Mapping[str, Any] | None = None
) -> Cluster:
    """``dualstack_ipam.open(url, config, **settings)``; its errors are the CLI's.

    ``settings`` are the creation settings (``node_strategy``,
    ``service_strategy``) a new store gets (``import`` passes the
    document's).

    Complexity:
        That of :func:`dualstack_ipam.open`.
    """
    import dualstack_ipam

    return dualstack_ipam.open(url, config, **dict(settings or {}))


def on_store(
    where: Target,
    action: Callable[[Cluster], tuple[Result, bool]],
    *,
    create: ClusterConfig | None = DEFAULT_CONFIG,
    settings: Mapping[str, Any] | None = None,
    guard: bool = True,
) -> tuple[Result, bool]:
    """Run ``action`` on the store; returns its result and whether something was saved.

    ``action`` returns (result, changed). A missing SQLite store is created
    with ``create`` (refused beside the old JSON state file; with ``create``
    None a missing store is bad input; ``guard=False`` lets ``import`` read
    that file into the store) — after ``action`` succeeded on an
    in-memory cluster of that config, so that a failing command creates no
    file. A store of another kind is opened as it is (``memory://`` with
    ``create``, being new at every call).

    Raises:
        CLIError: no store and ``create`` is None, or the old JSON state
            file is in the way (exit 2); whatever ``action`` raises.
        StoreUnavailableError: the store could not be reached (exit 5).

    Complexity:
        That of ``action``, twice for a missing store, plus opening it.
    """
    found = exists(where)
    if found is False:
        if create is None:
            raise CLIError(f"there is no store {where.shown!r} (nothing was changed)")
        if guard:
            _legacy_guard(where)
        with open_store("memory://", create, settings) as trial:
            action(trial)
        with open_store(where.url, create, settings) as cluster:
            result, _ = action(cluster)
        return result, True
    if where.url.startswith("memory:"):
        with open_store(where.url, create, settings) as cluster:
            return action(cluster)
    try:
        cluster = open_store(where.url)
    except InvalidConfigError:
        if create is None:
            raise
        # The file may be a store another run is creating right now (its
        # config not written yet): open it as a creator. A store with
        # another config, or any other problem, raises again here.
        cluster = open_store(where.url, create, settings)
    with cluster:
        return action(cluster)
