"""Exits 1, 2 and 5 mean that nothing changed, even when the store turns busy after a commit.

The SIGKILL drill once counted an acknowledged change as lost (1 of 5,263),
and the likely path was this one: ``allocate-service`` read the store
again after its transaction had committed (to learn whether it created
the key), a busy store (SQLite's BUSY or PROTOCOL under many writers)
failed that read, and the command exited 5 with its change saved. Here
every store read after the first committed transaction fails, on a real
SQLite file, and each command either exits 0 with its change stored or
exits non-zero with the store as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dualstack_ipam
from dualstack_ipam.cli import main
from dualstack_ipam.errors import StoreUnavailableError
from dualstack_ipam.store import SQLiteBackend

READS = ("get", "get_prefix", "changes", "revision")


@contextlib.contextmanager
def busy_after_commit(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every SQLite read fails once a transaction has committed; yields the commit count."""
    commits = [0]
    txn = SQLiteBackend.txn

    def counting_txn(self: SQLiteBackend, *args: Any, **kwargs: Any) -> Any:
        result = txn(self, *args, **kwargs)
        commits[0] += result.succeeded
        return result

    def reader(name: str) -> Any:
        real = getattr(SQLiteBackend, name)

        def read(self: SQLiteBackend, *args: Any, **kwargs: Any) -> Any:
            if commits[0]:
                raise StoreUnavailableError(f"injected: the store is busy ({name})")
            return real(self, *args, **kwargs)

        return read

    with monkeypatch.context() as patch:
        patch.setattr(SQLiteBackend, "txn", counting_txn)
        for name in READS:
            patch.setattr(SQLiteBackend, name, reader(name))
        yield commits


def _view(store: Path) -> dict[str, tuple[str, ...]]:
    with dualstack_ipam.open(f"sqlite://{store}") as cluster:
        view = {key: tuple(map(str, held)) for key, held in cluster.nodes.items()}
        view.update({key: tuple(map(str, held)) for key, held in cluster.services.items()})
    return view


def _run(args: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue()


@pytest.mark.parametrize(
    "command",
    [
        ["allocate-node", "n1"],
        ["release-node", "n0"],
        ["allocate-service", "-f", "MANIFEST"],
        ["release-service", "ns/s0"],
    ],
    ids=lambda command: command[0],
)
def test_a_busy_store_after_the_commit_never_hides_a_saved_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    store = tmp_path / "ipam.db"
    manifest = tmp_path / "s1.json"
    manifest.write_text(
        json.dumps(
            {
                "metadata": {"name": "s1", "namespace": "ns"},
                "spec": {"ipFamilyPolicy": "RequireDualStack"},
            }
        )
    )
    zero = tmp_path / "s0.json"
    zero.write_text(json.dumps({"metadata": {"name": "s0", "namespace": "ns"}}))
    state = ["--state", str(store)]
    assert _run(["allocate-node", "n0", *state])[0] == 0
    assert _run(["allocate-service", "-f", str(zero), *state])[0] == 0
    before = _view(store)
    args = [str(manifest) if part == "MANIFEST" else part for part in command]
    with busy_after_commit(monkeypatch) as commits:
        code, _ = _run([*args, "--json", *state])
    after = _view(store)
    assert commits[0] == 1  # the command's one transaction committed
    assert code == 0, "the change was saved: the command must say so (exit 0)"
    assert after != before
