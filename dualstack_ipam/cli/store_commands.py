"""The commands about the store itself: ``export``, ``import``, ``log`` and ``migrate``.

``export`` writes the store's JSON document (:meth:`Cluster.export
<dualstack_ipam.durable.Cluster.export>`): the backup, and the way to move a
cluster to another store. ``import FILE`` creates a new store from such a
document — or from the JSON state file of dualstack-ipam before the store,
recognised by its ``"kind": "dualstack-ipam-state"`` — with the document's
own cluster; it refuses an existing store. ``log`` prints the journal,
``migrate`` brings an older SQLite store to this release's format.

``export``, ``log`` and ``migrate`` need an existing store (they never
create one); ``import`` needs a missing one.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cli.ground import CLIError, Output
from dualstack_ipam.cli.options import json_option, store_options
from dualstack_ipam.cli.progress import progress
from dualstack_ipam.cli.render import format_table, to_json
from dualstack_ipam.cli.reporting import emit
from dualstack_ipam.cli.store import Target, exists, on_store, runs, target
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import IPAMError, SnapshotError

if TYPE_CHECKING:
    import click

    from dualstack_ipam.durable import Cluster

__all__ = [
    "LEGACY_KIND",
    "add_store_commands",
    "run_export",
    "run_import",
    "run_log",
    "run_migrate",
]

LEGACY_KIND = "dualstack-ipam-state"
"""The ``kind`` of the JSON state file of dualstack-ipam before the store."""


def _refuse_store_files(where: Target, path: str) -> None:
    if where.path is None:
        return
    store = os.path.realpath(where.path)
    if os.path.realpath(path) in (store, store + "-wal", store + "-shm"):
        raise CLIError(f"the output file {path!r} is the store {where.shown!r} (or its log)")


def run_export(
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    output: str | None = None,
) -> Output:
    """The store's JSON document; written to ``output`` when given (then a one-line note).

    Raises:
        CLIError: no store, or ``output`` cannot be written or is the store
            file (exit 2; nothing changed).
        StoreUnavailableError: the store stayed locked (exit 5).

    Complexity:
        O(n) in what the store holds.

    >>> import json, os, tempfile
    >>> from dualstack_ipam.cli import run_allocate_node
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> _ = run_allocate_node("node-1", path)
    >>> isinstance(json.loads(run_export(path)), dict)
    True
    >>> folder.cleanup()
    """
    where = target(state_path, store_url)
    if output is not None:
        _refuse_store_files(where, output)
    document, _ = on_store(where, lambda cluster: (cluster.export(), False), create=None)
    text = json.dumps(document, indent=2)
    if output is None:
        return Output(text)
    try:
        with open(output, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    except OSError as exc:
        raise CLIError(
            f"could not write {output!r} ({exc.strerror or type(exc).__name__}); "
            "nothing was changed"
        ) from None
    return Output(f"Wrote the store {where.shown} to {output}")


def _read_document(source: str) -> Any:
    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as file:
                raw = file.read()
    except OSError as exc:
        raise CLIError(f"cannot read {source!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise CLIError(f"{source!r} is not a JSON document ({exc})") from None


def document_of(data: Any, source: str) -> tuple[dict[str, Any], ClusterConfig]:
    """The export document in ``data`` (an old JSON state file converted) and its cluster.

    Raises:
        CLIError: not a document the store can import (exit 2).

    Complexity:
        O(size of ``data``).
    """
    from dualstack_ipam.durable import document_from_state_file

    try:
        if isinstance(data, Mapping) and data.get("kind") == LEGACY_KIND:
            data = document_from_state_file(data)
        if not isinstance(data, Mapping) or not isinstance(data.get("config"), Mapping):
            raise SnapshotError("it has no cluster config")
        return dict(data), ClusterConfig.from_dict(data["config"])
    except (IPAMError, ValueError, TypeError, LookupError, AttributeError) as exc:
        raise CLIError(f"{source!r} cannot be imported: {exc} (nothing was changed)") from None


def run_import(
    source: str,
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
) -> Output:
    """Create a new store from the JSON document in ``source`` (``-``: stdin).

    The document is what ``export`` writes, or the JSON state file of
    dualstack-ipam before the store. The store gets the document's cluster.
    It is imported into an in-memory store first, so a document that does
    not import creates no file. A document of hundreds of records shows a
    progress bar on stderr when it is a terminal (it moves once per
    import: the library imports a document in one call).

    Raises:
        CLIError: the store exists, or ``source`` is unreadable or not an
            importable document (exit 2; nothing changed).
        StoreUnavailableError: the store could not be reached (exit 5).

    Complexity:
        O(n) in the document's size, twice.

    >>> import os, tempfile
    >>> from dualstack_ipam.cli import run_allocate_node
    >>> folder = tempfile.TemporaryDirectory()
    >>> old, new = (os.path.join(folder.name, name) for name in ("old.db", "new.db"))
    >>> _ = run_allocate_node("node-1", old)
    >>> with open(os.path.join(folder.name, "backup.json"), "w") as file:
    ...     _ = file.write(run_export(old))
    >>> print(run_import(os.path.join(folder.name, "backup.json"), new))  # doctest: +ELLIPSIS
    Imported 1 node and 0 Services from .../backup.json into .../new.db
    >>> folder.cleanup()
    """
    where = target(state_path, store_url)
    if exists(where):
        raise CLIError(
            f"store {where.shown!r} already exists; import creates a new store "
            "(give another --state, or remove it first)"
        )
    document, config = document_of(_read_document(source), source)

    def act(cluster: Cluster) -> tuple[tuple[int, int], bool]:
        cluster.import_(document)
        services = len(cluster.services) if config.service_cidrs else 0
        advance(records)
        return (len(cluster.nodes), services), True

    settings = {
        name: document[name]
        for name in ("node_strategy", "service_strategy")
        if isinstance(document.get(name), str)
    }
    records = sum(len(document.get(name) or ()) for name in ("nodes", "services"))
    with progress(records * runs(where), "import") as advance:
        (nodes, services), _ = on_store(where, act, create=config, settings=settings, guard=False)
    if as_json:
        text = to_json({"state": where.shown, "nodes": nodes, "services": services})
    else:
        text = (
            f"Imported {nodes} node{'' if nodes == 1 else 's'} and {services} "
            f"Service{'' if services == 1 else 's'} from {source} into {where.shown}"
        )
    return Output(text, saved=where.shown)


def _entry_json(entry: Any) -> dict[str, Any]:
    return {
        "revision": entry.revision,
        "time": entry.time.isoformat(),
        "actor": entry.actor,
        "op": entry.op,
        "kind": entry.kind,
        "key": entry.key,
        "addresses": [str(a) for a in entry.addresses],
        "data": entry.data,
    }


def run_log(
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    since: int = 0,
    as_json: bool = False,
) -> Output:
    """The journal: every change after revision ``since``, oldest first.

    Raises:
        CLIError: no store, or ``since`` < 0 (exit 2).
        StoreUnavailableError: the store stayed locked (exit 5).

    Complexity:
        O(entries after ``since``).

    >>> import os, tempfile
    >>> from dualstack_ipam.cli import run_allocate_node
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> _ = run_allocate_node("node-1", path)
    >>> "allocate" in run_log(path)
    True
    >>> folder.cleanup()
    """
    if type(since) is not int or since < 0:
        raise CLIError(f"--since takes a revision >= 0, got {since!r}")
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> tuple[list[dict[str, Any]], bool]:
        return [_entry_json(entry) for entry in cluster.journal(since)], False

    entries, _ = on_store(where, act, create=None)
    if as_json:
        return Output(to_json(entries))
    if not entries:
        return Output(f"No change after revision {since} in {where.shown}.")
    rows = [
        [
            e["revision"],
            e["time"],
            e["actor"],
            e["op"],
            e["kind"],
            e["key"],
            ", ".join(e["addresses"]),
        ]
        for e in entries
    ]
    return Output(
        format_table(["REVISION", "TIME", "ACTOR", "OP", "KIND", "KEY", "ADDRESSES"], rows)
    )


def run_migrate(state_path: str | None = None, *, store_url: str | None = None) -> Output:
    """Bring the SQLite store to this release's format version; say what was done.

    Raises:
        CLIError: a store that is not a SQLite file (exit 2).
        InvalidConfigError: no such store, or a store newer than this
            release (exit 2; untouched).
        StoreError: not a store of ours (exit 2; untouched).

    Complexity:
        O(n) records in the worst case of a migration step.

    >>> import os, tempfile
    >>> from dualstack_ipam.cli import run_allocate_node
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> _ = run_allocate_node("node-1", path)
    >>> print(run_migrate(path))  # doctest: +ELLIPSIS
    store .../ipam.db has format version 1, this release's: nothing to migrate
    >>> folder.cleanup()
    """
    from dualstack_ipam.store import migrate

    where = target(state_path, store_url)
    if where.path is None:
        raise CLIError(f"migrate works on a SQLite store file; {where.shown!r} is not one")
    before, after = migrate(where.path)
    if before == after:
        return Output(
            f"store {where.shown} has format version {after}, this release's: nothing to migrate"
        )
    return Output(
        f"migrated store {where.shown} from format version {before} to {after}",
        saved=where.shown,
    )


# ------------------------------------------------------------------ click


def add_store_commands(cli: click.Group) -> None:
    """Wire ``export``, ``import``, ``log`` and ``migrate`` into the click group ``cli``.

    Complexity:
        O(1).
    """
    import click

    @cli.command("export")
    @json_option
    @store_options
    @click.option("--output", "-o", "output", metavar="FILE", help="Write to FILE, not stdout.")
    def export(
        as_json: bool, state_path: str | None, store_url: str | None, output: str | None
    ) -> None:
        """Print the store as one JSON document (a backup; 'import' reads it).

        The document is JSON with or without --json.
        """
        emit(run_export(state_path, store_url=store_url, output=output))

    @cli.command("import")
    @json_option
    @store_options
    @click.argument("source", metavar="FILE")
    def import_(source: str, as_json: bool, state_path: str | None, store_url: str | None) -> None:
        """Create a new store from FILE: an export, or the old JSON state file."""
        emit(run_import(source, state_path, store_url=store_url, as_json=as_json))

    @cli.command("log")
    @json_option
    @store_options
    @click.option("--since", "since", type=int, default=0, metavar="N", help="After revision N.")
    def log(as_json: bool, state_path: str | None, store_url: str | None, since: int) -> None:
        """Print the journal: every change, oldest first."""
        emit(run_log(state_path, store_url=store_url, since=since, as_json=as_json))

    @cli.command("migrate")
    @store_options
    def migrate(state_path: str | None, store_url: str | None) -> None:
        """Bring an older SQLite store to this release's format (says what it did)."""
        emit(run_migrate(state_path, store_url=store_url))
