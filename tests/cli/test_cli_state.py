"""``show``, ``init`` and the state file: its shape, creation, corruption and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cli_support import SEED_FLAGS, allocate_seed, error_line, invoke, ok_json

from dualstack_ipam import ClusterConfig
from dualstack_ipam.cli import DEFAULT_CONFIG
from dualstack_ipam.cli import state as state_mod


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A state file path (not created yet)."""
    return str(tmp_path / "state.json")


# ------------------------------------------------------------------ show / init / state


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
    assert "n1    10.244.0.0/24  fc00::/64" in out
    assert "default/my-service-ipv6" in out
    assert "FAMILY" in out


def test_missing_state_file_is_created_with_default_cluster(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    shown = ok_json("show")
    assert shown["config"] == DEFAULT_CONFIG.to_dict()
    path = tmp_path / "dualstack-ipam-state.json"
    assert json.loads(path.read_text())["kind"] == "dualstack-ipam-state"
    # A read-only command does not rewrite an existing file.
    inode = path.stat().st_ino
    ok_json("show")
    assert path.stat().st_ino == inode


def test_init_refuses_to_overwrite(state: str) -> None:
    assert invoke("init", *SEED_FLAGS, "--state", state).exit_code == 0
    ok_json("allocate-node", "n1", "--state", state)
    before = Path(state).read_bytes()
    result = invoke("init", "--cluster-cidr=10.0.0.0/8", "--state", state)
    assert result.exit_code == 2
    assert "refusing to overwrite" in error_line(result.stderr)
    assert Path(state).read_bytes() == before


def test_init_options_anywhere_and_bad_flags(tmp_path: Path) -> None:
    path = str(tmp_path / "v6.json")
    data = ok_json(
        "init", "--cluster-cidr", "fd00::/48", "--state", path, "--node-cidr-mask-size=56"
    )
    assert data == {
        "state": path,
        "config": ClusterConfig("fd00::/48", node_mask_ipv6=56).to_dict(),
    }
    assert ok_json("allocate-node", "n1", "--state", path)["cidrs"] == ["fd00::/56"]
    bad = str(tmp_path / "bad.json")
    result = invoke("init", "--state", bad, "--cluster-cidr=10.0.0.0/8,10.1.0.0/16")
    assert result.exit_code == 2
    error_line(result.stderr)
    assert not Path(bad).exists()


def _tamper(path: str, change: Any) -> None:
    data = json.loads(Path(path).read_text())
    change(data)
    Path(path).write_text(json.dumps(data))


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda p: Path(p).write_bytes(b""), id="empty"),
        pytest.param(lambda p: Path(p).write_bytes(b"\xff\x00\x01"), id="binary"),
        pytest.param(lambda p: Path(p).write_text("[1, 2]"), id="a-list"),
        pytest.param(lambda p: _tamper(p, lambda d: d.update(kind="other")), id="kind"),
        pytest.param(lambda p: _tamper(p, lambda d: d.update(version=2)), id="version"),
        pytest.param(lambda p: _tamper(p, lambda d: d.pop("services")), id="no-services"),
        pytest.param(lambda p: _tamper(p, lambda d: d.update(services=None)), id="null-services"),
        pytest.param(lambda p: _tamper(p, lambda d: d["nodes"].update(used=7)), id="node-count"),
        pytest.param(
            lambda p: _tamper(p, lambda d: d["nodes"]["nodes"].update(n2=["10.244.0.0/24"])),
            id="shared-cidr",
        ),
        pytest.param(
            lambda p: _tamper(p, lambda d: d["config"].update(node_mask_ipv4=25)),
            id="config-mismatch",
        ),
    ],
)
def test_corrupt_state_is_reported_and_left_untouched(state: str, corrupt: Any) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    allocate_seed(state)
    corrupt(state)
    before = Path(state).read_bytes()
    for args in (["show"], ["allocate-node", "n2"], ["release-node", "n1"]):
        result = invoke(*args, "--state", state)
        assert result.exit_code == 2, result.stdout
        assert "corrupt" in error_line(result.stderr)
        assert result.stdout == ""
    assert Path(state).read_bytes() == before


def test_unreadable_state_paths_are_bad_input(tmp_path: Path) -> None:
    result = invoke("show", "--state", str(tmp_path / "no-such-dir" / "state.json"))
    assert result.exit_code == 2
    assert "no-such-dir" in error_line(result.stderr)
    (tmp_path / "a-dir").mkdir()
    result = invoke("show", "--state", str(tmp_path / "a-dir"))
    assert result.exit_code == 2
    error_line(result.stderr)


def test_atomic_write_failure_leaves_file_and_no_temp(
    state: str, tmp_path: Path, monkeypatch: Any
) -> None:
    ok_json("allocate-node", "n1", "--state", state)
    before = Path(state).read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device", dst)

    monkeypatch.setattr(os, "replace", broken_replace)
    result = invoke("allocate-node", "n2", "--state", state)
    assert result.exit_code == 2
    assert "No space left" in error_line(result.stderr)
    assert Path(state).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_write_keeps_file_mode_and_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    ok_json("allocate-node", "n1", "--state", str(real))
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    ok_json("allocate-node", "n2", "--state", str(link))
    assert link.is_symlink()  # the link was written through, not replaced
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(ok_json("show", "--state", str(real))["nodes"]) == ["n1", "n2"]


def test_transaction_writes_nothing_when_the_block_fails(state: str) -> None:
    with state_mod.transaction(state, DEFAULT_CONFIG) as st:
        st.nodes.allocate("n1")
    before = Path(state).read_bytes()

    def fail_midway() -> None:
        with state_mod.transaction(state, DEFAULT_CONFIG) as st:
            st.nodes.allocate("n2")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert Path(state).read_bytes() == before


def test_state_round_trip() -> None:
    st = state_mod.State.fresh(DEFAULT_CONFIG)
    st.nodes.allocate("n1")
    assert st.services is not None
    st.services.allocate_service({"metadata": {"name": "web"}})
    again = state_mod.State.from_json(json.loads(state_mod.dumps(st)))
    assert state_mod.dumps(again) == state_mod.dumps(st)
    assert again.nodes.get("n1") == st.nodes.get("n1")
