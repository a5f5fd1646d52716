"""``reconcile`` whose report cannot be written: 3 when it repaired something, else 2 (not 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import error_line, invoke, program_env, store_state

DEV_FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux)")

TRUTH = json.dumps(
    {
        "kind": "List",
        "items": [
            {"kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.3.0/24"}}
        ],
    }
)


def reconcile_into_dev_full(state: str, *args: str) -> tuple[int, str]:
    with DEV_FULL.open("wb") as sink:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dualstack_ipam",
                "reconcile",
                "-f",
                "-",
                "--state",
                state,
                *args,
            ],
            input=TRUTH.encode(),
            stdout=sink,
            stderr=subprocess.PIPE,
            timeout=60,
            env=program_env(),
            check=False,
        )
    return proc.returncode, proc.stderr.decode()


def test_a_lost_report(tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    assert invoke("show", "--state", state).exit_code == 0
    before = store_state(state)
    code, stderr = reconcile_into_dev_full(state)  # differences found, nothing changed
    assert code == 2
    assert "nothing was changed" in error_line(stderr)
    assert store_state(state) == before
    code, stderr = reconcile_into_dev_full(state, "--repair")
    assert code == 3
    assert "the change was saved" in error_line(stderr)
    assert invoke("reconcile", "-f", "-", "--state", state, input=TRUTH).exit_code == 0
