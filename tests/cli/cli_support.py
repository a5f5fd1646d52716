"""What the CLI tests share: running the program, and checking its output.

``run`` starts the real program in a subprocess (``python -m
dualstack_ipam``); ``invoke`` runs the same click group in-process through
click's ``CliRunner``, which keeps the tests fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import netaddr
from click.testing import CliRunner, Result

from dualstack_ipam.cli import build_cli

DATA = Path(__file__).resolve().parent.parent / "data"
SEED_FILE = DATA / "seed-services.yaml"
SEED_VERBATIM = DATA / "seed-services-verbatim.yaml"
SEED_FLAGS = [
    '--feature-gates="IPv6DualStack=true"',
    "--cluster-cidr=10.244.0.0/16,fc00::/24",
    "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112",
]
V4_SERVICES = netaddr.IPNetwork("10.96.0.0/12")
V6_SERVICES = netaddr.IPNetwork("fd00:10:96::/112")
V4_PODS = netaddr.IPNetwork("10.244.0.0/16")
V6_PODS = netaddr.IPNetwork("fc00::/24")
REPO = Path(__file__).resolve().parents[2]


def program_env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real program, in a subprocess, with this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "dualstack_ipam", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        env=program_env(),
        check=False,
    )


def runner() -> CliRunner:
    # click < 8.2 mixes stderr into stdout unless told not to; 8.2 dropped the flag.
    legacy: dict[str, Any] = {"mix_stderr": False}
    try:
        return CliRunner(**legacy)
    except TypeError:
        return CliRunner()


def invoke(*args: str, input: str | None = None) -> Result:
    result = runner().invoke(build_cli(), list(args), input=input)
    # Our group turns every error into an exit code: nothing may escape.
    assert result.exception is None or isinstance(result.exception, SystemExit), result
    return result


def error_line(stderr: str) -> str:
    """The one stderr line of a failed run (and no traceback)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("dualstack-ipam: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def ok_json(*args: str, input: str | None = None) -> Any:
    # --json right after the command: before a "--" that ends the options.
    result = invoke(args[0], "--json", *args[1:], input=input)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def allocate_seed(state: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = ok_json("allocate-service", "-f", str(SEED_FILE), "--state", state)
    return data


def store_state(state: str) -> Any:
    """What the store at ``state`` holds (its export, less the revision).

    Equal means that every key holds what it held. The revision is left out:
    a multi-document ``allocate-service`` that fails undoes what it did
    (allocations then releases), which moves the revision on.
    """
    exported = invoke("export", "--state", state)
    assert exported.exit_code == 0, exported.stderr
    data = json.loads(exported.stdout)
    data.pop("revision")
    return data
