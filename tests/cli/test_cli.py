"""Tests of the ``dualstack-ipam`` command line as a program, ``demo`` and ``plan``.

A few tests run the real program in a subprocess (``python -m
dualstack_ipam``): each command once, a corrupt store file, bad flags, and
four concurrent runs on one store. The rest run in-process through
click's ``CliRunner`` on the same click group (``cli_support.invoke``). The
node and Service commands are in ``test_cli_commands.py``, the store in
``test_cli_store.py`` and ``test_cli_store_commands.py``, the SIGKILL drill
in ``tests/cli_drill``, and issue 8's defects in their own files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import netaddr
import pytest
from cli_support import (
    REPO,
    SEED_FILE,
    SEED_FLAGS,
    SEED_VERBATIM,
    V4_SERVICES,
    V6_SERVICES,
    error_line,
    invoke,
    ok_json,
    run,
    runner,
)

from dualstack_ipam import ClusterConfig
from dualstack_ipam.cli import (
    DEFAULT_CONFIG,
    SEED_SERVICES,
    build_cli,
    format_table,
    main,
    parse_manifests,
    run_demo,
)


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A state file path (not created yet)."""
    return str(tmp_path / "state.json")


# ------------------------------------------------------------------ subprocess


def test_demo_subprocess(tmp_path: Path) -> None:
    proc = run("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    got = {}
    for line in proc.stdout.splitlines():
        if line.startswith("default/my-service"):
            got[line.split()[0]] = netaddr.IPAddress(line.split()[-1])
    assert set(got) == {
        "default/my-service",
        "default/my-service-ipv6",
        "default/my-service-ipv4",
    }
    assert got["default/my-service"] in V4_SERVICES  # no ipFamily: the first range
    assert got["default/my-service-ipv6"] in V6_SERVICES
    assert got["default/my-service-ipv4"] in V4_SERVICES
    assert "node-1  10.244.0.0/24  fc00::/64" in proc.stdout
    # Seeded: another process (another hash seed) prints the same.
    assert proc.stdout == run_demo() + "\n"
    assert list(tmp_path.iterdir()) == []  # the demo keeps no state


def test_plan_subprocess_seed_flags_json(tmp_path: Path) -> None:
    proc = run("plan", *SEED_FLAGS, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["max_nodes"] == 256
    assert data["families"] == {
        "IPv4": {"nodes": 256, "addresses_per_node": 256, "service_ips": 2**20 - 2},
        # 2**64 does not fit a JSON double: written as a string, as snapshots do.
        "IPv6": {"nodes": 2**40, "addresses_per_node": str(2**64), "service_ips": 2**16 - 1},
    }
    config = ClusterConfig.from_flags(SEED_FLAGS)
    assert data["component_flags"] == config.component_flags()
    assert data["config"] == config.to_dict()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--cluster-cidr=10.244.0.0/16,10.0.0.0/8"], "10.0.0.0/8"),
        (["--cluster-cidr=10.244.0.0/16", "--bogus-flag=1"], "--bogus-flag"),
        (["--cluster-cidr=10.244.0.0/16,fc00::/24", "--node-cidr-mask-size=24"], "mask-size"),
    ],
)
def test_plan_subprocess_bad_flags(tmp_path: Path, flags: list[str], needle: str) -> None:
    proc = run("plan", *flags, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert needle in error_line(proc.stderr)


def test_stateful_commands_subprocess(tmp_path: Path) -> None:
    flags = [
        "--cluster-cidr=10.244.0.0/16,fc00::/24",
        "--service-cluster-ip-range=10.96.0.0/24,fd00:10:96::/112",
    ]
    assert run("init", *flags, cwd=tmp_path).returncode == 0
    assert (tmp_path / "dualstack-ipam.db").exists()  # the default --state

    first = run("allocate-node", "node-a", "--json", cwd=tmp_path)
    again = run("allocate-node", "node-a", "--json", cwd=tmp_path)
    assert first.returncode == again.returncode == 0
    assert json.loads(first.stdout) == json.loads(again.stdout)
    assert json.loads(first.stdout)["cidrs"] == ["10.244.0.0/24", "fc00::/64"]

    proc = run("allocate-service", "-f", str(SEED_FILE), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("clusterIPs:") == 3  # the manifests, as YAML
    assert "# default/my-service-ipv6: fd00:10:96::" in proc.stdout

    stdin = json.dumps(
        {
            "metadata": {"name": "dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.96.0.10"},
        }
    )
    proc = run("allocate-service", "-f", "-", "--json", cwd=tmp_path, input=stdin)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["spec"]["clusterIPs"] == ["10.96.0.10"]

    assert run("release-service", "kube-system/dns", cwd=tmp_path).returncode == 0
    assert run("release-node", "node-a", cwd=tmp_path).returncode == 0
    proc = run("show", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["nodes"] == {}
    assert "kube-system/dns" not in shown["services"]


def test_seed_file_on_single_service_family_cluster_is_refused_whole(tmp_path: Path) -> None:
    # Kept apart from the test above for clarity: IPv6 Services need an IPv6 range.
    flags = ["--cluster-cidr=10.244.0.0/16", "--service-cluster-ip-range=10.96.0.0/24"]
    state = str(tmp_path / "s.db")
    assert invoke("init", *flags, "--state", state).exit_code == 0
    result = invoke("allocate-service", "-f", str(SEED_FILE), "--state", state)
    assert result.exit_code == 2
    assert "document 2" in error_line(result.stderr)
    assert ok_json("show", "--state", state)["services"] == {}
    assert ok_json("log", "--state", state) == []


def test_corrupt_store_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "dualstack-ipam.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    for args in (["show"], ["allocate-node", "node-a"]):
        proc = run(*args, cwd=tmp_path)
        assert proc.returncode == 2
        error_line(proc.stderr)
        assert path.read_bytes() == b"SQLite format 3\x00" + b"\xff" * 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dualstack-ipam.db"]


def test_old_json_state_file_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "dualstack-ipam-state.json"
    path.write_bytes(b'{"kind": "dualstack-ipam-state", "version": 1, "config": ')
    proc = run("allocate-node", "node-a", cwd=tmp_path)
    assert proc.returncode == 2
    assert "dualstack-ipam import dualstack-ipam-state.json" in error_line(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dualstack-ipam-state.json"]


def test_concurrent_allocate_node_subprocesses(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dualstack_ipam", "allocate-node", f"node-{i}", "--json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    shown = json.loads(run("show", "--json", cwd=tmp_path).stdout)
    assert sorted(shown["nodes"]) == [f"node-{i}" for i in range(4)]
    pairs = [tuple(cidrs) for cidrs in shown["nodes"].values()]
    assert len({pair[0] for pair in pairs}) == len({pair[1] for pair in pairs}) == 4
    for i, (out, _) in enumerate(outputs):
        assert tuple(json.loads(out)["cidrs"]) == tuple(shown["nodes"][f"node-{i}"])
    assert shown["usage"]["IPv4"]["node_cidrs"]["used"] == 4


def test_library_does_not_import_click_or_yaml(tmp_path: Path) -> None:
    code = (
        "import sys, dualstack_ipam, dualstack_ipam.cli, dualstack_ipam.cli.store; "
        "print(sorted(m for m in ('click', 'yaml') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------ demo / plan


def test_demo_json_in_process() -> None:
    data = ok_json("demo")
    assert data["config"] == DEFAULT_CONFIG.to_dict()
    assert data["nodes"]["node-1"] == ["10.244.0.0/24", "fc00::/64"]
    names = [svc["metadata"]["name"] for svc in data["services"]]
    assert names == ["my-service", "my-service-ipv6", "my-service-ipv4"]
    families = [svc["spec"]["ipFamilies"] for svc in data["services"]]
    assert families == [["IPv4"], ["IPv6"], ["IPv4"]]
    assert data["services"][1]["spec"]["ipFamily"] == "IPv6"  # the seed's alpha field is kept
    assert ok_json("demo") == data


def test_plan_human_output() -> None:
    result = invoke("plan", *SEED_FLAGS)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "at most 256 nodes" in out
    for count in ("1099511627776", "18446744073709551616", "1048574"):
        assert count in out
    assert "--proxy-mode=ipvs" in out
    assert "--feature-gates" not in out


def test_plan_options_anywhere_and_feature_gate() -> None:
    data = ok_json(
        "plan", "--cluster-cidr", "fd00::/48", "--with-feature-gate", "--node-cidr-mask-size=56"
    )
    assert data["families"] == {
        "IPv6": {"nodes": 256, "addresses_per_node": str(2**72), "service_ips": 0}
    }
    assert all(
        f[0] == "--feature-gates=IPv6DualStack=true" for f in data["component_flags"].values()
    )


def test_plan_service_range_inside_cluster_cidr() -> None:
    data = ok_json("plan", "--cluster-cidr=10.0.0.0/16", "--service-cluster-ip-range=10.0.0.0/20")
    assert data["max_nodes"] == 240  # the Service range's 16 node subnets are set aside
    assert data["families"]["IPv4"]["service_ips"] == 2**12 - 2


def test_plan_without_flags_is_bad_input() -> None:
    result = invoke("plan")
    assert result.exit_code == 2
    assert "--cluster-cidr is required" in error_line(result.stderr)


# ------------------------------------------------------------------ plumbing


@pytest.mark.parametrize(
    "args",
    [
        ["allocate-node"],
        ["no-such-command"],
        ["show", "--bogus"],
        ["demo", "--json=yes"],
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    error_line(result.stderr)


def test_help_and_version() -> None:
    for args in ([], ["--help"], ["plan", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0
        assert "Usage:" in result.stdout
    assert "dualstack-ipam" in invoke("--version").stdout


@pytest.mark.parametrize("module", ["click", "yaml"])
def test_missing_dependency_exits_2_with_install_hint(
    module: str, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail
    assert main(["demo"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line = error_line(captured.err)
    assert "pip install 'dualstack_ipam[cli]'" in line
    assert module in line


def test_main_returns_exit_codes(state: str, capsys: Any) -> None:
    assert main(["allocate-node", "n1", "--state", state]) == 0
    assert main(["plan", "--cluster-cidr=nonsense"]) == 2
    assert "nonsense" in error_line(capsys.readouterr().err)


def test_format_table() -> None:
    table = format_table(["A", "COUNT", "NOTE"], [["x", 5, None], ["longer", 1234, "ok"]])
    assert table.splitlines() == [
        "A       COUNT  NOTE",
        "x           5  -",
        "longer   1234  ok",
    ]


def test_seed_data_file_matches_embedded_demo_manifests() -> None:
    assert parse_manifests(SEED_FILE.read_text(), "seed") == parse_manifests(SEED_SERVICES, "x")
    verbatim = parse_manifests(SEED_VERBATIM.read_text(), "seed")
    assert [d["metadata"]["name"] for d in verbatim] == ["my-service"] * 3
    for ours, page in zip(parse_manifests(SEED_SERVICES, "x"), verbatim, strict=True):
        assert {**ours, "metadata": {}} == {**page, "metadata": {}}


def test_pyproject_declares_the_console_script() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["dualstack-ipam"] == "dualstack_ipam.cli:main"
    assert any(dep.startswith("click") for dep in project["optional-dependencies"]["cli"])


def test_stdin_must_be_utf8_and_manifests_json_data(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    bad_bytes = b'{"metadata":{"name":"sur"},"spec":{"selector":{"app":"x\xff"}}}'
    result = runner().invoke(
        build_cli(), ["allocate-service", "-f", "-", "--state", state], input=bad_bytes
    )
    assert result.exit_code == 2
    assert "not UTF-8 text" in error_line(result.stderr)
    dated = "metadata: {name: d1, annotations: {x: 2020-01-01}}\n"
    result = invoke("allocate-service", "-f", "-", "--state", state, "--json", input=dated)
    assert result.exit_code == 2
    assert "metadata.annotations.x" in error_line(result.stderr)
    shown = ok_json("show", "--state", state)
    assert shown["services"] == {}
