"""``dualstack-ipam reconcile -f TRUTH [--repair] [--leak-grace N]``: the store against the cluster.

The truth is what ``kubectl get nodes,svc -A -o yaml`` prints (see
:mod:`dualstack_ipam.cli.truth`). Both allocators of the store are
reconciled against it (:meth:`~dualstack_ipam.NodeCIDRAllocator.reconcile`,
:meth:`~dualstack_ipam.ServiceIPAllocator.reconcile`), and the report is
printed. The command exits 0 when the store is in sync with the truth
after the call, and :data:`~dualstack_ipam.cli.reporting.EXIT_DIFFERENCES`
(4) when differences remain: without ``--repair`` nothing was changed,
with it what could be repaired was.

A kind of object the truth does not hold at all is not reconciled: a
truth of Nodes alone must not report every Service as leaked (and, with
``--repair``, release them). Neither are Services on a cluster without a
Service range. The report says which kind was left out, and why.

Nothing is changed before everything was checked: the truth is read and
checked whole before the store is opened, and with ``--repair`` both
allocators are first reconciled without it, so that an entry one of them
refuses stops the command before the other one changed anything. Each
repair of a key is one store transaction, so a repair cut short (the
store lost, the process killed) leaves a consistent store that the next
``reconcile`` finishes. Leaked keys are released only once ``--leak-grace``
consecutive repairing runs saw them leaked; the counts live in the store,
so separate runs add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from dualstack_ipam.cli.ground import CLIError, Output
from dualstack_ipam.cli.options import json_option, store_options
from dualstack_ipam.cli.progress import progress
from dualstack_ipam.cli.render import format_table, to_json
from dualstack_ipam.cli.reporting import EXIT_DIFFERENCES, emit
from dualstack_ipam.cli.store import on_store, runs, target
from dualstack_ipam.cli.truth import Truth, read_truth

if TYPE_CHECKING:
    import click

    from dualstack_ipam.durable import Cluster
    from dualstack_ipam.reconcile import ReconcileReport

__all__ = ["ReconcileOutput", "add_reconcile_command", "run_reconcile"]

_KINDS = (("nodes", "node"), ("services", "service"))


class ReconcileOutput(Output):
    """The text of ``reconcile``, and whether the store is in sync with the truth.

    Args:
        text: what to print.
        saved: the store changed, or None.
        in_sync: nothing is left to fix (exit 0; else exit 4).

    Complexity:
        O(len(text)).

    >>> ReconcileOutput("In sync.", in_sync=True).in_sync
    True
    """

    in_sync: bool

    def __new__(cls, text: str, saved: str | None = None, *, in_sync: bool = True) -> Self:
        output = super().__new__(cls, text, saved)
        output.in_sync = in_sync
        return output


def _skipped(truth: Truth, cluster: Cluster) -> dict[str, str]:
    reasons = {}
    if truth.nodes is None:
        reasons["nodes"] = "no Node in the truth"
    if truth.services is None:
        reasons["services"] = "no Service in the truth"
    elif not cluster.config.service_cidrs:
        reasons["services"] = "the cluster has no Service range"
    return reasons


def _texts(held: Sequence[Any]) -> str:
    return ", ".join(str(a) for a in held) or "-"


def _fixed(alloc: Any, report: ReconcileReport) -> set[str]:
    """The keys found missing or mismatched that now hold what the truth says."""
    wants = {**report.missing, **{key: want for key, (_, want) in report.mismatched.items()}}
    return {key for key, want in wants.items() if set(alloc.get(key) or ()) == set(want)}


def _rows(
    kind: str, report: ReconcileReport, fixed: set[str] | None
) -> list[tuple[bool, list[object]]]:
    """``(settled, row)`` per finding; ``fixed`` (repair only) the keys now as the truth says."""
    rows: list[tuple[bool, list[object]]] = []

    def add(settled: bool, key: str, found: str, held: str, want: str, done: str) -> None:
        row: list[object] = [kind, key, found, held, want]
        rows.append((settled, row if fixed is None else [*row, done]))

    for key, want in report.missing.items():
        ok = fixed is not None and key in fixed
        add(ok, key, "missing", "-", _texts(want), "occupied" if ok else "-")
    for key, (held, want) in report.mismatched.items():
        ok = fixed is not None and key in fixed
        add(ok, key, "mismatched", _texts(held), _texts(want), "fixed" if ok else "-")
    for key, held in report.leaked.items():
        ok = key in report.released
        add(ok, key, "leaked", _texts(held), "-", "released" if ok else "kept")
    for key, outside in report.out_of_range.items():
        add(False, key, "out of range", "-", _texts(outside), "-")
    for address, keys in report.conflicts.items():
        add(False, ", ".join(keys), "conflict", "-", str(address), "-")
    return rows


def _text(
    where: str,
    truth: Truth,
    reports: dict[str, ReconcileReport],
    fixed: dict[str, set[str]] | None,
    skipped: dict[str, str],
    in_sync: bool,
) -> str:
    counts = []
    for side, label in (("nodes", "Node"), ("services", "Service")):
        found = getattr(truth, side)
        if found is not None:
            counts.append(f"{len(found)} {label}{'' if len(found) == 1 else 's'}")
    repair = fixed is not None
    mode = "repair" if repair else "report only"
    lines = [f"Reconciled {where} with {', '.join(truth.sources)}: {', '.join(counts)} ({mode})"]
    lines += [f"{side.capitalize()} not reconciled: {why}" for side, why in skipped.items()]
    rows = [
        found
        for side, kind in _KINDS
        if side in reports
        for found in _rows(kind, reports[side], None if fixed is None else fixed[side])
    ]
    if rows:
        headers = ["KIND", "KEY", "FOUND", "HELD", "TRUTH", *(["DONE"] if repair else [])]
        lines.append(format_table(headers, [row for _, row in rows]))
    left = sum(not settled for settled, _ in rows)
    if in_sync:
        lines.append("Repaired: in sync with the truth." if rows else "In sync with the truth.")
    elif repair:
        lines.append(
            f"{left} difference{'' if left == 1 else 's'} remain{'s' if left == 1 else ''}."
        )
    else:
        lines.append(
            f"{left} difference{'' if left == 1 else 's'} found; nothing was changed "
            "(--repair fixes what it can)."
        )
    return "\n".join(lines)


def run_reconcile(
    sources: Sequence[str],
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    repair: bool = False,
    leak_grace: int = 3,
    as_json: bool = False,
) -> ReconcileOutput:
    """Reconcile the store's nodes and Services with the truth in ``sources``.

    Args:
        sources: files (``-``: stdin) holding Node and Service objects, as
            ``kubectl get nodes,svc -A -o yaml`` prints them.
        state_path, store_url: the store (see :func:`~dualstack_ipam.cli.store.target`).
        repair: make the store follow the truth (see the module notes).
        leak_grace: consecutive repairing runs that must see a key leaked
            before it is released (>= 1).
        as_json: print JSON.

    Returns:
        The report; its ``in_sync`` says whether the store and the truth
        agree after the call (exit 0, else 4).

    Raises:
        CLIError: a bad ``leak_grace``; a truth that does not read (naming
            the document and the field); nothing changed (exit 2).
        StoreUnavailableError: the store could not be reached (exit 5;
            with ``repair``, keys repaired before it stay repaired).

    Complexity:
        O(n + m) for n keys held and m in the truth (twice with
        ``repair``), plus one store transaction per key repaired.

    >>> import os, tempfile
    >>> from dualstack_ipam.cli import run_allocate_node
    >>> folder = tempfile.TemporaryDirectory()
    >>> path, truth = os.path.join(folder.name, "ipam.db"), os.path.join(folder.name, "t.yaml")
    >>> _ = run_allocate_node("gone", path)
    >>> with open(truth, "w") as file:
    ...     _ = file.write("kind: Node\\nmetadata: {name: n1}\\nspec: {podCIDR: 10.244.7.0/24}\\n")
    >>> out = run_reconcile([truth], path, repair=True, leak_grace=1)
    >>> print(out)  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    Reconciled .../ipam.db with .../t.yaml: 1 Node (repair)
    Services not reconciled: no Service in the truth
    KIND  KEY   FOUND    HELD                      TRUTH          DONE
    node  n1    missing  -                         10.244.7.0/24  occupied
    node  gone  leaked   10.244.0.0/24, fc00::/64  -              released
    Repaired: in sync with the truth.
    >>> out.in_sync
    True
    >>> folder.cleanup()
    """
    if isinstance(leak_grace, bool) or not isinstance(leak_grace, int) or leak_grace < 1:
        raise CLIError(f"--leak-grace takes a count >= 1, got {leak_grace!r}")
    truth = read_truth(sources)
    where = target(state_path, store_url)
    passes = 2 if repair else 1
    size = (len(truth.nodes or ()) + len(truth.services or ())) * passes * runs(where)

    with progress(size, "reconcile") as advance:

        def act(cluster: Cluster) -> tuple[tuple[Any, ...], bool]:
            skipped = _skipped(truth, cluster)
            sides = {
                side: (getattr(cluster, side), getattr(truth, side))
                for side, _ in _KINDS
                if side not in skipped
            }
            before = cluster.revision
            reports: dict[str, ReconcileReport] = {}
            # Report-only first: whatever one side refuses stops the call
            # before the other side changed.
            for repairing in (False, True)[:passes]:
                for side, (alloc, observed) in sides.items():
                    reports[side] = alloc.reconcile(
                        observed, repair=repairing, leak_grace=leak_grace
                    )
                    advance(len(observed))
            changed = cluster.revision != before
            fixed = None
            if repair:
                fixed = {side: _fixed(alloc, reports[side]) for side, (alloc, _) in sides.items()}
            return (reports, fixed, skipped), changed

        (reports, fixed, skipped), changed = on_store(where, act)
    in_sync = all(report.ok for report in reports.values())
    if as_json:
        data = {
            "store": where.shown,
            "repair": repair,
            "leak_grace": leak_grace,
            "ok": in_sync,
            **{side: (reports[side].to_dict() if side in reports else None) for side, _ in _KINDS},
            "skipped": skipped,
        }
        text = to_json(data)
    else:
        text = _text(where.shown, truth, reports, fixed, skipped, in_sync)
    return ReconcileOutput(text, saved=where.shown if changed else None, in_sync=in_sync)


# ------------------------------------------------------------------ click


def add_reconcile_command(cli: click.Group) -> None:
    """Wire ``reconcile`` into the click group ``cli``.

    Complexity:
        O(1).
    """
    import click

    @cli.command("reconcile")
    @json_option
    @store_options
    @click.option(
        "-f",
        "--filename",
        "sources",
        multiple=True,
        metavar="TRUTH",
        help="Node and Service objects, as 'kubectl get nodes,svc -A -o yaml' prints them "
        "('-' for stdin); may be repeated.",
    )
    @click.option("--repair", is_flag=True, help="Make the store follow the truth.")
    @click.option(
        "--leak-grace",
        "leak_grace",
        type=int,
        default=3,
        show_default=True,
        metavar="N",
        help="Release a leaked key once N consecutive repairing runs saw it.",
    )
    def reconcile(
        sources: tuple[str, ...],
        repair: bool,
        leak_grace: int,
        as_json: bool,
        state_path: str | None,
        store_url: str | None,
    ) -> None:
        """Compare the store with the cluster's truth; with --repair, follow it.

        Exit 0: in sync after the call; 4: differences remain (without
        --repair nothing was changed).
        """
        if not sources:
            raise click.UsageError("Missing option '-f' / '--filename'.")
        output = run_reconcile(
            sources,
            state_path,
            store_url=store_url,
            repair=repair,
            leak_grace=leak_grace,
            as_json=as_json,
        )
        emit(output)
        if not output.in_sync:
            raise click.exceptions.Exit(EXIT_DIFFERENCES)
