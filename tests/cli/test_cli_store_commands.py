"""``export``, ``import`` (also of the old JSON state file), ``log``, and exit 5."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cli_support import DATA, allocate_seed, error_line, invoke, ok_json, run

LEGACY = DATA / "legacy-state.json"
"""A JSON state file written by the code before the store (cli/state.py, removed)."""


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def populate(state: str) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    ok_json("allocate-node", "n2", "--state", state)
    ok_json("release-node", "n1", "--state", state)
    allocate_seed(state)


def test_export_import_round_trip(tmp_path: Path) -> None:
    old, new = str(tmp_path / "old.db"), str(tmp_path / "new.db")
    populate(old)
    backup = tmp_path / "backup.json"
    result = invoke("export", "--state", old, "--output", str(backup))
    assert result.exit_code == 0
    assert str(backup) in result.stdout
    assert json.loads(backup.read_text()) == ok_json_plain("export", "--state", old)
    data = ok_json("import", str(backup), "--state", new)
    assert data == {"state": new, "nodes": 1, "services": 3}
    assert ok_json("show", "--state", new) == ok_json("show", "--state", old)


def ok_json_plain(*args: str) -> Any:
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_import_keeps_the_documents_cluster(tmp_path: Path) -> None:
    old, new = str(tmp_path / "v6.db"), str(tmp_path / "copy.db")
    assert invoke("init", "--cluster-cidr=fd00::/48", "--state", old).exit_code == 0
    ok_json("allocate-node", "n1", "--state", old)
    (tmp_path / "doc.json").write_text(invoke("export", "--state", old).stdout)
    assert invoke("import", str(tmp_path / "doc.json"), "--state", new).exit_code == 0
    shown = ok_json("show", "--state", new)
    assert shown["config"]["cluster_cidrs"] == ["fd00::/48"]
    assert ok_json("allocate-node", "n2", "--state", new)["cidrs"] == ["fd00:0:0:1::/64"]


def test_import_of_the_old_json_state_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(LEGACY, tmp_path / "dualstack-ipam-state.json")
    # The guard sends the user here, and import is the way out of it.
    assert invoke("show").exit_code == 2
    result = invoke("import", "dualstack-ipam-state.json")
    assert result.exit_code == 0, result.stderr
    assert "Imported 2 nodes and 3 Services" in result.stdout
    shown = ok_json("show")
    assert shown["nodes"] == {
        "node-1": ["10.244.0.0/24", "fc00::/64"],
        "node-3": ["10.244.2.0/24", "fc00:0:0:2::/64"],
    }
    assert shown["services"]["default/web"][0] == "10.96.0.80"
    assert shown["services"]["kube-system/dns"] == ["10.96.0.10"]
    assert len(shown["services"]["default/v6"]) == 1
    # What the old file holds stays held: the store refuses to hand it out again.
    taken = invoke(
        "allocate-service", "-f", "-", input="metadata: {name: x}\nspec: {clusterIP: 10.96.0.10}\n"
    )
    assert taken.exit_code == 1
    assert "kube-system/dns" in error_line(taken.stderr)


def test_import_refuses_an_existing_store(tmp_path: Path) -> None:
    state = str(tmp_path / "ipam.db")
    populate(state)
    before = ok_json_plain("export", "--state", state)
    result = invoke("import", str(LEGACY), "--state", state)
    assert result.exit_code == 2
    assert "already exists" in error_line(result.stderr)
    assert ok_json_plain("export", "--state", state) == before


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2]", b'{"kind": "dualstack-ipam-state", "version": 7}', b"{}"],
)
def test_import_of_a_bad_document_creates_nothing(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "doc.json"
    source.write_bytes(content)
    result = invoke("import", str(source), "--state", str(tmp_path / "ipam.db"))
    assert result.exit_code == 2
    error_line(result.stderr)
    assert files_in(tmp_path) == ["doc.json"]


def test_import_of_a_missing_file(tmp_path: Path) -> None:
    result = invoke("import", str(tmp_path / "none.json"), "--state", str(tmp_path / "s.db"))
    assert result.exit_code == 2
    assert "none.json" in error_line(result.stderr)
    assert files_in(tmp_path) == []


def stored(state: str) -> tuple[list[Any], ...]:
    """The store's records, change feed and meta rows, but the opening count.

    Opening a store increments ``meta.settled`` (the write that settles
    what a killed writer left, docs/store.md); nothing else may change.
    """
    conn = sqlite3.connect(state)
    try:
        return (
            conn.execute("SELECT * FROM kv ORDER BY key").fetchall(),
            conn.execute("SELECT * FROM feed ORDER BY revision, key").fetchall(),
            conn.execute("SELECT * FROM meta WHERE name != 'settled' ORDER BY name").fetchall(),
        )
    finally:
        conn.close()


def test_export_output_errors_change_nothing(tmp_path: Path) -> None:
    state = str(tmp_path / "ipam.db")
    populate(state)
    before = stored(state)
    for output in (str(tmp_path / "no-dir" / "x.json"), state, state + "-wal"):
        result = invoke("export", "--state", state, "--output", output)
        assert result.exit_code == 2, output
        error_line(result.stderr)
    assert stored(state) == before
    assert before[0]  # the comparison saw records


def test_log_lists_the_changes(tmp_path: Path) -> None:
    state = str(tmp_path / "ipam.db")
    populate(state)
    entries = ok_json("log", "--state", state)
    assert [(e["op"], e["kind"], e["key"]) for e in entries[:3]] == [
        ("allocate", "node", "n1"),
        ("allocate", "node", "n2"),
        ("release", "node", "n1"),
    ]
    assert entries[0]["addresses"] == ["10.244.0.0/24", "fc00::/64"]
    assert entries[2]["addresses"] == []
    assert len(entries) == 6
    revisions = [e["revision"] for e in entries]
    assert revisions == sorted(revisions)
    # The seed's Services are one allocate-service call: one transaction.
    assert len(set(revisions)) == len(revisions) - 2
    assert set(entries[0]) == {
        "revision",
        "time",
        "actor",
        "op",
        "kind",
        "key",
        "addresses",
        "data",
    }
    later = ok_json("log", "--state", state, "--since", str(revisions[2]))
    assert later == entries[3:]
    text = invoke("log", "--state", state).stdout
    assert text.splitlines()[0].split() == [
        "REVISION",
        "TIME",
        "ACTOR",
        "OP",
        "KIND",
        "KEY",
        "ADDRESSES",
    ]
    assert len(text.splitlines()) == 7
    # A no-op writes no entry.
    ok_json("release-node", "n1", "--state", state)
    assert len(ok_json("log", "--state", state)) == 6
    result = invoke("log", "--state", state, "--since", "-1")
    assert result.exit_code == 2
    error_line(result.stderr)


def test_store_locked_past_the_busy_timeout_is_exit_5(tmp_path: Path) -> None:
    path = tmp_path / "ipam.db"
    ok_json("allocate-node", "n1", "--state", str(path))
    before = ok_json_plain("export", "--state", str(path))
    # Another process holds the write lock (a real second connection, not a mock).
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        url = f"sqlite://{path}?busy_timeout_ms=50"
        for args in (["allocate-node", "n2"], ["release-node", "n1"]):
            proc = run(*args, "--store", url, cwd=tmp_path)
            assert proc.returncode == 5, proc.stderr
            assert "locked" in error_line(proc.stderr)
            assert proc.stdout == ""
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ok_json_plain("export", "--state", str(path)) == before
