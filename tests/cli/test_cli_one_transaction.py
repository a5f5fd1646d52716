"""A multi-document ``allocate-service`` / several-name ``release-service`` is ONE transaction.

Exits 1, 2 and 5 mean that nothing changed. Calls of several Services used
to commit one transaction per Service and release what they had created on
a refusal; a store failing from the second transaction on then kept the
first Service while the command exited 5. Here a real SQLite store fails
every transaction from the Nth on (``StoreUnavailableError``, as a store
that stays busy): the command either exits 0 with every change stored, or
exits 5 with the store as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import error_line, invoke, ok_json

from dualstack_ipam.errors import StoreUnavailableError
from dualstack_ipam.store import SQLiteBackend, TxnLimits


def doc(name: str, ip: str | None = None) -> str:
    spec = f"{{clusterIP: {ip}}}" if ip else "{ipFamilyPolicy: PreferDualStack}"
    return f"---\nmetadata: {{name: {name}}}\nspec: {spec}\n"


@contextlib.contextmanager
def failing_from(monkeypatch: pytest.MonkeyPatch, first: int) -> Iterator[list[int]]:
    """Every SQLite transaction from the ``first``-th on fails; yields the count of attempts."""
    count = [0]
    txn = SQLiteBackend.txn

    def failing_txn(self: SQLiteBackend, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        if count[0] >= first:
            raise StoreUnavailableError("injected: the store stays busy")
        return txn(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SQLiteBackend, "txn", failing_txn)
        yield count


def view(state: str) -> Any:
    return ok_json("show", "--state", state)["services"], ok_json("log", "--state", state)


@pytest.mark.parametrize("first", [1, 2])
def test_a_store_failing_a_multi_document_call_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: int
) -> None:
    state = str(tmp_path / "ipam.db")
    ok_json("allocate-service", "-f", "-", "--state", state, input=doc("old"))
    before = view(state)
    text = doc("a") + doc("b", "10.96.0.20") + doc("c")
    with failing_from(monkeypatch, first) as count:
        result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    after = view(state)
    if result.exit_code == 0:
        assert first > count[0]  # the one transaction came before the failures
        assert len(after[0]) == len(before[0]) + 3
        # One transaction: the three journal entries share its revision.
        assert len({entry["revision"] for entry in after[1][-3:]}) == 1
    else:
        assert result.exit_code == 5
        assert after == before


@pytest.mark.parametrize("first", [1, 2])
def test_a_store_failing_a_release_of_several_names_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: int
) -> None:
    state = str(tmp_path / "ipam.db")
    text = doc("a") + doc("b") + doc("c")
    ok_json("allocate-service", "-f", "-", "--state", state, input=text)
    before = view(state)
    with failing_from(monkeypatch, first):
        result = invoke("release-service", "-f", "-", "--state", state, input=text)
    after = view(state)
    if result.exit_code == 0:
        assert not after[0]
        assert len({entry["revision"] for entry in after[1][-3:]}) == 1
    else:
        assert result.exit_code == 5
        assert after == before


def test_a_call_over_the_store_limit_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = str(tmp_path / "ipam.db")
    ok_json("allocate-service", "-f", "-", "--state", state, input=doc("old"))
    before = view(state)
    init = SQLiteBackend.__init__

    def limited(self: SQLiteBackend, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.limits = TxnLimits(max_ops=16)  # as etcd's --max-txn-ops sets it

    monkeypatch.setattr(SQLiteBackend, "__init__", limited)
    # Fewer documents than operations, but more records than one transaction takes.
    text = "".join(doc(f"s{i}") for i in range(10))
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    assert result.exit_code == 2
    assert "limit of 16 operations" in error_line(result.stderr)
    monkeypatch.undo()
    assert view(state) == before
