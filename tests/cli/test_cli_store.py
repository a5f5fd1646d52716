"""``show``, ``init`` and the store: where it is, creation, bad paths, corrupt and foreign files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cli_support import SEED_FLAGS, allocate_seed, error_line, invoke, ok_json

from dualstack_ipam import ClusterConfig
from dualstack_ipam.cli import DEFAULT_CONFIG
from dualstack_ipam.store import FORMAT_VERSION


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A store path (not created yet)."""
    return str(tmp_path / "ipam.db")


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ show / init


def test_show_json_shape(state: str) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    results = allocate_seed(state)
    shown = ok_json("show", "--state", state)
    assert set(shown) == {"config", "nodes", "services", "usage"}
    assert shown["nodes"] == {"n1": ["10.244.0.0/24", "fc00::/64"]}
    assert len(shown["services"]) == len(results) == 3
    assert shown["usage"]["IPv6"] == {
        "node_cidrs": {"capacity": 2**40, "reserved": 0, "used": 1, "free": 2**40 - 1},
        "service_ips": {"capacity": 2**16 - 1, "used": 1, "free": 2**16 - 2},
    }


def test_show_human_output(state: str) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    allocate_seed(state)
    out = invoke("show", "--state", state).stdout
    assert out.startswith(f"State {state}: dual-stack cluster")
    assert "n1    10.244.0.0/24  fc00::/64" in out
    assert "default/my-service-ipv6" in out


def test_missing_store_is_created_with_default_cluster(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    shown = ok_json("show")
    assert shown["config"] == DEFAULT_CONFIG.to_dict()
    path = tmp_path / "dualstack-ipam.db"
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    assert files_in(tmp_path) == ["dualstack-ipam.db"]  # SQLite's -wal/-shm go at close


def test_failed_command_on_missing_store_creates_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.db")
    for args in (
        ["allocate-node", ""],
        ["show", "--nodes-per-day", "-1"],
        ["show", "--svg", str(tmp_path / "no-dir" / "m.svg")],
        ["release-service", "bad name!"],
    ):
        result = invoke(*args, "--state", path)
        assert result.exit_code == 2, (args, result.stdout)
        error_line(result.stderr)
    assert files_in(tmp_path) == []


def test_init_refuses_an_existing_store(state: str) -> None:
    assert invoke("init", *SEED_FLAGS, "--state", state).exit_code == 0
    ok_json("allocate-node", "n1", "--state", state)
    before = ok_json("export", "--state", state)
    result = invoke("init", "--cluster-cidr=10.0.0.0/8", "--state", state)
    assert result.exit_code == 2
    assert "refusing to overwrite" in error_line(result.stderr)
    assert ok_json("export", "--state", state) == before


def test_init_options_anywhere_and_bad_flags(tmp_path: Path) -> None:
    path = str(tmp_path / "v6.db")
    data = ok_json(
        "init", "--cluster-cidr", "fd00::/48", "--state", path, "--node-cidr-mask-size=56"
    )
    assert data == {
        "state": path,
        "config": ClusterConfig("fd00::/48", node_mask_ipv6=56).to_dict(),
    }
    assert ok_json("allocate-node", "n1", "--state", path)["cidrs"] == ["fd00::/56"]
    bad = tmp_path / "bad.db"
    result = invoke("init", "--state", str(bad), "--cluster-cidr=10.0.0.0/8,10.1.0.0/16")
    assert result.exit_code == 2
    error_line(result.stderr)
    assert not bad.exists()


def test_store_url_option(tmp_path: Path) -> None:
    path = tmp_path / "by-url.db"
    url = f"sqlite://{path}"
    assert ok_json("allocate-node", "n1", "--store", url)["cidrs"][0] == "10.244.0.0/24"
    assert ok_json("show", "--state", str(path))["nodes"] == {"n1": ["10.244.0.0/24", "fc00::/64"]}
    # A memory:// store is new at every call: nothing is kept between runs.
    assert ok_json("allocate-node", "n1", "--store", "memory://")["node"] == "n1"
    assert ok_json("show", "--store", "memory://")["nodes"] == {}


def test_state_and_store_together_is_bad_input(tmp_path: Path) -> None:
    result = invoke("show", "--state", str(tmp_path / "a.db"), "--store", "memory://")
    assert result.exit_code == 2
    assert "--state and --store" in error_line(result.stderr)
    assert files_in(tmp_path) == []


def test_bad_store_url_is_bad_input(tmp_path: Path) -> None:
    for url in ("redis://x", "sqlite://host/x.db", "etcd:///ipam", "etcd://127.0.0.1:x/ipam"):
        result = invoke("show", "--store", url)
        assert result.exit_code == 2, url
        error_line(result.stderr)


def test_an_etcd_store_that_does_not_answer_is_exit_5() -> None:
    # Port 1 on loopback refuses at once: the store is unavailable, not the URL bad.
    result = invoke("show", "--store", "etcd://127.0.0.1:1/ipam")
    assert result.exit_code == 5
    assert "etcd did not answer" in error_line(result.stderr)


# ------------------------------------------------------------------ the old JSON state file


@pytest.mark.parametrize("where", ["cwd", "beside"])
def test_old_json_state_file_stops_a_new_store(
    tmp_path: Path, monkeypatch: Any, where: str
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.chdir(tmp_path if where == "cwd" else folder)
    legacy = (tmp_path if where == "cwd" else folder) / "dualstack-ipam-state.json"
    legacy.write_text('{"kind": "dualstack-ipam-state"}')
    store = str(folder / "ipam.db") if where == "cwd" else "ipam.db"
    for args in (["show"], ["allocate-node", "n1"], ["init", *SEED_FLAGS]):
        result = invoke(*args, "--state", store)
        assert result.exit_code == 2
        line = error_line(result.stderr)
        assert "dualstack-ipam import" in line
        assert "dualstack-ipam-state.json" in line
    assert files_in(folder) == ([] if where == "cwd" else ["dualstack-ipam-state.json"])


def test_old_json_state_file_and_default_store(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dualstack-ipam-state.json").write_text("{}")
    result = invoke("allocate-node", "n1")
    assert result.exit_code == 2
    assert "import dualstack-ipam-state.json" in error_line(result.stderr)
    assert files_in(tmp_path) == ["dualstack-ipam-state.json"]


def test_existing_store_is_used_beside_an_old_json_file(state: str, tmp_path: Path) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    (tmp_path / "dualstack-ipam-state.json").write_text("{}")
    assert ok_json("allocate-node", "n2", "--state", state)["node"] == "n2"


# ------------------------------------------------------------------ bad paths and files


def test_empty_path_directory_and_missing_folder_are_bad_input(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # The JSON state file's defect: --state '' made a lock file in the parent folder.
    work = tmp_path / "work"
    (work / "a-dir").mkdir(parents=True)
    monkeypatch.chdir(work)
    for path in ("", "  ", "a-dir", str(work / "a-dir"), str(work / "no-such-dir" / "s.db")):
        for args in (["show"], ["allocate-node", "n1"], ["export"], ["log"], ["migrate"]):
            result = invoke(*args, "--state", path)
            assert result.exit_code == 2, (path, args)
            error_line(result.stderr)
    assert files_in(tmp_path) == ["work"]
    assert files_in(work) == ["a-dir"]
    assert files_in(work / "a-dir") == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_bad_input_and_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    for args in (["show"], ["allocate-node", "n1"], ["import", "x.json"]):
        result = invoke(*args, "--state", str(fifo))
        assert result.exit_code == 2
        assert "FIFO" in error_line(result.stderr)
    assert files_in(tmp_path) == ["pipe.db"]


def _foreign(path: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()


def _newer(path: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'format_version'", (99,))
    conn.close()


@pytest.mark.parametrize(
    ("spoil", "needle"),
    [
        pytest.param(lambda p: Path(p).write_bytes(b"\xff\x00\x01" * 50), "not a SQLite", id="bin"),
        pytest.param(lambda p: Path(p).write_text("{}"), "not a SQLite", id="json"),
        pytest.param(_foreign, "another program", id="foreign"),
        pytest.param(_newer, "newer", id="newer-format"),
    ],
)
def test_corrupt_foreign_or_newer_store_is_refused_untouched(
    tmp_path: Path, spoil: Any, needle: str
) -> None:
    path = str(tmp_path / "ipam.db")
    if spoil in (_newer,):
        ok_json("allocate-node", "n1", "--state", path)
    spoil(path)
    before = Path(path).read_bytes()
    for args in (["show"], ["allocate-node", "n2"], ["release-node", "n1"], ["export"], ["log"]):
        result = invoke(*args, "--state", path)
        assert result.exit_code == 2, (args, result.stdout)
        assert needle in error_line(result.stderr)
        assert result.stdout == ""
    result = invoke("migrate", "--state", path)
    assert result.exit_code == 2
    assert Path(path).read_bytes() == before
    assert files_in(tmp_path) == ["ipam.db"]


def test_migrate_says_what_it_did(state: str) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    result = invoke("migrate", "--state", state)
    assert result.exit_code == 0
    assert f"format version {FORMAT_VERSION}" in result.stdout
    assert "nothing to migrate" in result.stdout
    result = invoke("migrate", "--store", "memory://")
    assert result.exit_code == 2
    assert "SQLite" in error_line(result.stderr)


def test_export_log_migrate_need_an_existing_store(tmp_path: Path) -> None:
    for args in (["export"], ["log"], ["migrate"]):
        result = invoke(*args, "--state", str(tmp_path / "none.db"))
        assert result.exit_code == 2, args
        error_line(result.stderr)
    assert files_in(tmp_path) == []


def test_an_older_format_is_never_migrated_silently(state: str) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    conn = sqlite3.connect(state)
    with conn:
        conn.execute("UPDATE meta SET value = 0 WHERE name = 'format_version'")
    conn.close()
    before = Path(state).read_bytes()
    result = invoke("allocate-node", "n2", "--state", state)
    assert result.exit_code == 2
    assert "dualstack-ipam migrate" in error_line(result.stderr)
    # Format 0 never existed: migrate says it has no step from it, and writes nothing.
    result = invoke("migrate", "--state", state)
    assert result.exit_code == 2
    assert "no migration from format version 0" in error_line(result.stderr)
    assert Path(state).read_bytes() == before
