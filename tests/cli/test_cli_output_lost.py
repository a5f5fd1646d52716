"""Output that cannot be written: exit 3 when the change was saved, else 2.

Issue 8, defect 4: a command whose output could not be written after its
change was committed (stdout on ``/dev/full``, a closed pipe) exited 2 or 1,
which promise that nothing changed. Now it exits 3 with one stderr line
saying the change was saved; when nothing was saved (``show``, ``plan``,
``demo``, an idempotent re-run) it exits 2 and says nothing changed. Real
subprocesses write to a real full device and a real pipe without a reader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from cli_support import SEED_FILE, error_line, program_env, run, store_state

DEV_FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux)")


def _run_into(
    sink: int | IO[bytes], *args: str, cwd: Path, stdin: bytes | None = None
) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "dualstack_ipam", *args],
        cwd=cwd,
        input=stdin,
        stdout=sink,
        stderr=subprocess.PIPE,
        timeout=60,
        env=program_env(),
        check=False,
    )
    return proc.returncode, proc.stderr.decode()


def _full(*args: str, cwd: Path, stdin: bytes | None = None) -> tuple[int, str]:
    with DEV_FULL.open("wb") as sink:
        return _run_into(sink, *args, cwd=cwd, stdin=stdin)


def _closed_pipe(*args: str, cwd: Path, stdin: bytes | None = None) -> tuple[int, str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the program writes
    try:
        return _run_into(write_end, *args, cwd=cwd, stdin=stdin)
    finally:
        os.close(write_end)


Sink = Callable[..., tuple[int, str]]
SINKS: dict[str, Sink] = {"dev-full": _full, "closed-pipe": _closed_pipe}


@pytest.fixture(params=list(SINKS.values()), ids=list(SINKS))
def lost(request: pytest.FixtureRequest) -> Sink:
    sink: Sink = request.param
    return sink


def _shown(cwd: Path) -> dict[str, object]:
    proc = run("show", "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def _saved_line(stderr: str) -> str:
    line = error_line(stderr)  # one line, no "Exception ignored" after it
    assert "could not write the output" in line
    assert "the change was saved in 'dualstack-ipam.db'" in line
    return line


def _unchanged_line(stderr: str) -> str:
    line = error_line(stderr)
    assert "could not write the output" in line
    assert "nothing was changed" in line
    assert "saved" not in line
    return line


def test_allocate_node_exits_3_and_keeps_the_node(lost: Sink, tmp_path: Path) -> None:
    code, stderr = lost("allocate-node", "node-a", "--json", cwd=tmp_path)
    assert code == 3
    _saved_line(stderr)
    assert _shown(tmp_path)["nodes"] == {"node-a": ["10.244.0.0/24", "fc00::/64"]}
    # Again: the node already holds its CIDRs, nothing is saved, so exit 2.
    before = store_state(str(tmp_path / "dualstack-ipam.db"))
    code, stderr = lost("allocate-node", "node-a", cwd=tmp_path)
    assert code == 2
    _unchanged_line(stderr)
    assert store_state(str(tmp_path / "dualstack-ipam.db")) == before


def test_release_node_exits_3_and_the_node_is_gone(lost: Sink, tmp_path: Path) -> None:
    assert run("allocate-node", "node-a", cwd=tmp_path).returncode == 0
    code, stderr = lost("release-node", "node-a", cwd=tmp_path)
    assert code == 3
    _saved_line(stderr)
    assert _shown(tmp_path)["nodes"] == {}


def test_allocate_service_exits_3_and_keeps_the_services(lost: Sink, tmp_path: Path) -> None:
    code, stderr = lost("allocate-service", "-f", "-", cwd=tmp_path, stdin=SEED_FILE.read_bytes())
    assert code == 3
    _saved_line(stderr)
    services = _shown(tmp_path)["services"]
    assert isinstance(services, dict)
    assert sorted(services) == [
        "default/my-service",
        "default/my-service-ipv4",
        "default/my-service-ipv6",
    ]


def test_init_exits_3_and_the_file_exists(lost: Sink, tmp_path: Path) -> None:
    code, stderr = lost("init", "--cluster-cidr=fd00::/48", cwd=tmp_path)
    assert code == 3
    _saved_line(stderr)
    config = _shown(tmp_path)["config"]
    assert isinstance(config, dict)
    assert config["cluster_cidrs"] == ["fd00::/48"]


@pytest.mark.parametrize(
    "args",
    [["show"], ["show", "--json"], ["plan", "--cluster-cidr=10.0.0.0/16"], ["demo"]],
)
def test_read_only_commands_exit_2_and_say_nothing_changed(
    lost: Sink, tmp_path: Path, args: list[str]
) -> None:
    assert run("allocate-node", "node-a", cwd=tmp_path).returncode == 0
    state = tmp_path / "dualstack-ipam.db"
    before = store_state(str(state))
    code, stderr = lost(*args, cwd=tmp_path)
    assert code == 2
    _unchanged_line(stderr)
    assert store_state(str(state)) == before


def test_show_that_creates_the_store_exits_3(lost: Sink, tmp_path: Path) -> None:
    # The one case where show saves: a missing store is created.
    code, stderr = lost("show", cwd=tmp_path)
    assert code == 3
    _saved_line(stderr)
    assert (tmp_path / "dualstack-ipam.db").exists()


def test_refusals_keep_their_exit_code(lost: Sink, tmp_path: Path) -> None:
    # Nothing goes to stdout on an error, so a lost stdout changes nothing.
    code, stderr = lost("plan", "--cluster-cidr=nonsense", cwd=tmp_path)
    assert code == 2
    assert "nonsense" in error_line(stderr)


def test_stdout_closed_from_the_start(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["sh", "-c", 'exec "$0" -m dualstack_ipam allocate-node node-a >&-', sys.executable],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=program_env(),
        check=False,
    )
    assert proc.returncode == 3
    _saved_line(proc.stderr)
    nodes = _shown(tmp_path)["nodes"]
    assert isinstance(nodes, dict)
    assert "node-a" in nodes
