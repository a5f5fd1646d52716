"""Tests of the ``dualstack-ipam`` command line and its state file.

A few tests run the real program in a subprocess (``python -m
dualstack_ipam``): each command once, a corrupt state file, bad flags, and
four concurrent runs on one state file. The rest run in-process through
click's ``CliRunner`` on the same click group, which keeps the file fast.
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
    allocate_seed,
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
from dualstack_ipam.cli import state as state_mod


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
    assert (tmp_path / "dualstack-ipam-state.json").exists()  # the default --state

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
    assert invoke("init", *flags, "--state", str(tmp_path / "s.json")).exit_code == 0
    before = (tmp_path / "s.json").read_bytes()
    result = invoke("allocate-service", "-f", str(SEED_FILE), "--state", str(tmp_path / "s.json"))
    assert result.exit_code == 2
    assert "document 2" in error_line(result.stderr)
    assert (tmp_path / "s.json").read_bytes() == before


def test_corrupt_state_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "dualstack-ipam-state.json"
    path.write_bytes(b'{"kind": "dualstack-ipam-state", "version": 1, "config": ')
    for args in (["show"], ["allocate-node", "node-a"]):
        proc = run(*args, cwd=tmp_path)
        assert proc.returncode == 2
        assert "corrupt" in error_line(proc.stderr)
        assert path.read_bytes() == b'{"kind": "dualstack-ipam-state", "version": 1, "config": '


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
        "import sys, dualstack_ipam, dualstack_ipam.cli, dualstack_ipam.cli.state; "
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


# ------------------------------------------------------------------ nodes


def test_allocate_node_idempotent_then_release(state: str) -> None:
    first = ok_json("allocate-node", "node-a", "--state", state)
    assert first == {"node": "node-a", "cidrs": ["10.244.0.0/24", "fc00::/64"]}
    assert ok_json("allocate-node", "--state", state, "node-a") == first
    second = ok_json("allocate-node", "node-b", "--state", state)
    assert second["cidrs"] == ["10.244.1.0/24", "fc00:0:0:1::/64"]
    assert ok_json("release-node", "node-a", "--state", state) == {
        "node": "node-a",
        "released": True,
        "cidrs": first["cidrs"],
    }
    # Releasing what is not held is a no-op, exit 0.
    assert ok_json("release-node", "node-a", "--state", state)["released"] is False
    assert ok_json("show", "--state", state)["nodes"] == {"node-b": second["cidrs"]}


def test_allocate_node_human_table(state: str) -> None:
    result = invoke("allocate-node", "node-a", "--state", state)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "NODE    IPv4 POD CIDR  IPv6 POD CIDR",
        "node-a  10.244.0.0/24  fc00::/64",
    ]


def test_node_pool_exhausted_exits_1_and_keeps_state(state: str) -> None:
    init = ["init", "--cluster-cidr=10.0.0.0/23", "--node-cidr-mask-size=24", "--state", state]
    assert invoke(*init).exit_code == 0
    assert invoke("allocate-node", "a", "--state", state).exit_code == 0
    assert invoke("allocate-node", "b", "--state", state).exit_code == 0
    before = Path(state).read_bytes()
    result = invoke("allocate-node", "c", "--state", state)
    assert result.exit_code == 1
    assert "10.0.0.0/23" in error_line(result.stderr)
    assert Path(state).read_bytes() == before


# ------------------------------------------------------------------ services


def test_allocate_service_from_yaml_file(state: str) -> None:
    results = allocate_seed(state)
    assert [r["metadata"]["name"] for r in results] == [
        "my-service",
        "my-service-ipv6",
        "my-service-ipv4",
    ]
    ips = [netaddr.IPAddress(r["spec"]["clusterIP"]) for r in results]
    assert ips[0] in V4_SERVICES
    assert ips[1] in V6_SERVICES
    assert ips[2] in V4_SERVICES
    shown = ok_json("show", "--state", state)
    assert shown["services"] == {
        f"default/{r['metadata']['name']}": [r["spec"]["clusterIP"]] for r in results
    }
    assert shown["usage"]["IPv4"]["service_ips"]["used"] == 2
    assert shown["usage"]["IPv6"]["service_ips"]["used"] == 1
    # Re-creating the same Services is idempotent: same addresses, exit 0.
    assert allocate_seed(state) == results


def test_allocate_service_human_output_is_yaml(state: str) -> None:
    import yaml

    result = invoke("allocate-service", "-f", str(SEED_FILE), "--state", state)
    assert result.exit_code == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["spec"]["ipFamilies"] for d in docs] == [["IPv4"], ["IPv6"], ["IPv4"]]
    assert "# default/my-service-ipv6: fd00:10:96::" in result.stdout


def test_allocate_service_from_stdin_yaml_and_json(state: str) -> None:
    yaml_text = "metadata:\n  name: web\nspec:\n  ipFamilyPolicy: RequireDualStack\n"
    [web] = ok_json("allocate-service", "-f", "-", "--state", state, input=yaml_text)
    assert web["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    assert netaddr.IPAddress(web["spec"]["clusterIPs"][1]) in V6_SERVICES
    listed = json.dumps(
        [
            {"metadata": {"name": "a"}, "spec": {"clusterIP": "10.96.0.20"}},
            {"metadata": {"name": "b"}, "spec": {"ipFamilies": ["IPv6"]}},
        ]
    )
    a, b = ok_json("allocate-service", "--state", state, "-f", "-", input=listed)
    assert a["spec"]["clusterIPs"] == ["10.96.0.20"]
    assert b["spec"]["ipFamilies"] == ["IPv6"]


def test_allocate_service_kind_list(state: str) -> None:
    text = json.dumps({"kind": "List", "items": [{"metadata": {"name": "x"}}]})
    [x] = ok_json("allocate-service", "-f", "-", "--state", state, input=text)
    assert x["metadata"]["name"] == "x"


def test_allocate_service_all_or_nothing_on_invalid_document(state: str) -> None:
    allocate_seed(state)
    before = Path(state).read_bytes()
    text = (
        "metadata: {name: good}\n---\n"
        "metadata: {name: bad}\nspec: {ipFamilyPolicy: SomeStack}\n---\n"
        "metadata: {name: later}\n"
    )
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    assert result.exit_code == 2
    line = error_line(result.stderr)
    for needle in ("stdin document 2", "spec.ipFamilyPolicy", "SomeStack"):
        assert needle in line
    assert result.stdout == ""
    assert Path(state).read_bytes() == before


def test_allocate_service_all_or_nothing_on_taken_address(state: str) -> None:
    [dns] = ok_json(
        "allocate-service",
        "-f",
        "-",
        "--state",
        state,
        input="metadata: {name: dns}\nspec: {clusterIP: 10.96.0.10}\n",
    )
    before = Path(state).read_bytes()
    text = "metadata: {name: one}\n---\nmetadata: {name: two}\nspec: {clusterIP: 10.96.0.10}\n"
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    # A manifest asking for a taken address is refused by the state: exit 1.
    assert result.exit_code == 1
    line = error_line(result.stderr)
    for needle in ("document 2", "10.96.0.10", "default/dns"):
        assert needle in line
    assert Path(state).read_bytes() == before
    assert dns["spec"]["clusterIP"] == "10.96.0.10"


def test_seed_manifests_verbatim_share_a_name(state: str) -> None:
    # The page names all three my-service: the second one asks the existing
    # Service for IPv6, which it does not hold. Refused by the state, nothing kept.
    result = invoke("allocate-service", "-f", str(SEED_VERBATIM), "--state", state)
    assert result.exit_code == 1
    assert "document 2" in error_line(result.stderr)
    assert not Path(state).exists()


def test_service_range_exhausted_exits_1(state: str) -> None:
    flags = ["--cluster-cidr=10.244.0.0/16", "--service-cluster-ip-range=10.96.0.0/30"]
    assert invoke("init", *flags, "--state", state).exit_code == 0
    text = "".join(f"---\nmetadata: {{name: s{i}}}\n" for i in range(3))
    before = Path(state).read_bytes()
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    assert result.exit_code == 1
    assert "10.96.0.0/30" in error_line(result.stderr)
    assert Path(state).read_bytes() == before


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("metadata: {name: web\n", "not YAML or JSON data"),
        ("- just\n- a list\n", "mapping"),
        ("", "no Service manifest"),
        ("metadata: {name: Web}\n", "metadata.name"),
        ("kind: Pod\nmetadata: {name: web}\n", "kind"),
        ("metadata: {name: web}\nspec: {clusterIP: 10.200.0.1}\n", "spec.clusterIPs[0]"),
    ],
)
def test_bad_manifests_are_bad_input(state: str, text: str, needle: str) -> None:
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    assert result.exit_code == 2
    assert needle in error_line(result.stderr)
    assert not Path(state).exists()


def test_manifest_file_errors(state: str, tmp_path: Path) -> None:
    missing = invoke("allocate-service", "-f", str(tmp_path / "nope.yaml"), "--state", state)
    assert missing.exit_code == 2
    assert "nope.yaml" in error_line(missing.stderr)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = invoke("allocate-service", "-f", str(binary), "--state", state)
    assert result.exit_code == 2
    assert "UTF-8" in error_line(result.stderr)
    no_file = invoke("allocate-service", "--state", state)
    assert no_file.exit_code == 2
    assert "-f" in error_line(no_file.stderr)


def test_headless_and_external_name_get_no_address(state: str) -> None:
    text = (
        "metadata: {name: hl}\nspec: {clusterIP: None}\n---\n"
        "metadata: {name: ext}\nspec: {type: ExternalName, externalName: example.com}\n"
    )
    headless, external = ok_json("allocate-service", "-f", "-", "--state", state, input=text)
    assert headless["spec"]["clusterIPs"] == ["None"]
    assert "clusterIP" not in external["spec"]
    assert ok_json("show", "--state", state)["services"] == {}


def test_release_service_by_key_and_by_file(state: str) -> None:
    results = allocate_seed(state)
    released = ok_json("release-service", "default/my-service", "--state", state)
    assert released == [
        {
            "service": "default/my-service",
            "released": True,
            "addresses": [results[0]["spec"]["clusterIP"]],
        }
    ]
    # A bare NAME is in the default namespace, as with kubectl.
    assert ok_json("release-service", "my-service-ipv6", "--state", state)[0]["released"]
    report = ok_json("release-service", "-f", str(SEED_FILE), "--state", state)
    assert [r["released"] for r in report] == [False, False, True]
    assert ok_json("show", "--state", state)["services"] == {}


@pytest.mark.parametrize(
    "args",
    [
        [],  # neither a key nor -f
        ["default/web", "-f", "-"],  # both
        ["Bad/Name"],
        ["a/b/c"],
    ],
)
def test_release_service_bad_input(state: str, args: list[str]) -> None:
    result = invoke("release-service", *args, "--state", state, input="metadata: {name: x}\n")
    assert result.exit_code == 2
    error_line(result.stderr)


def test_service_commands_need_a_service_range(state: str) -> None:
    assert invoke("init", "--cluster-cidr=10.244.0.0/16", "--state", state).exit_code == 0
    nodes = ok_json("allocate-node", "n1", "--state", state)
    assert nodes["cidrs"] == ["10.244.0.0/24"]
    before = Path(state).read_bytes()
    for args in (["allocate-service", "-f", str(SEED_FILE)], ["release-service", "default/x"]):
        result = invoke(*args, "--state", state)
        assert result.exit_code == 2
        assert "no Service range" in error_line(result.stderr)
    assert Path(state).read_bytes() == before
    shown = ok_json("show", "--state", state)
    assert shown["services"] == {}
    assert shown["usage"] == {
        "IPv4": {
            "node_cidrs": {"capacity": 256, "reserved": 0, "used": 1, "free": 255},
            "service_ips": None,
        }
    }


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
