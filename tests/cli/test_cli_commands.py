"""The node and Service commands, in-process: output, idempotence, all-or-nothing, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import netaddr
import pytest
from cli_support import (
    SEED_FILE,
    SEED_VERBATIM,
    V4_SERVICES,
    V6_SERVICES,
    allocate_seed,
    error_line,
    invoke,
    ok_json,
    store_state,
)


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A store path (not created yet)."""
    return str(tmp_path / "state.db")


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
    before = store_state(state)
    result = invoke("allocate-node", "c", "--state", state)
    assert result.exit_code == 1
    assert "10.0.0.0/23" in error_line(result.stderr)
    assert store_state(state) == before


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
    before = store_state(state)
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
    assert store_state(state) == before


def test_allocate_service_all_or_nothing_on_taken_address(state: str) -> None:
    [dns] = ok_json(
        "allocate-service",
        "-f",
        "-",
        "--state",
        state,
        input="metadata: {name: dns}\nspec: {clusterIP: 10.96.0.10}\n",
    )
    before = store_state(state)
    text = "metadata: {name: one}\n---\nmetadata: {name: two}\nspec: {clusterIP: 10.96.0.10}\n"
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    # A manifest asking for a taken address is refused by the state: exit 1.
    assert result.exit_code == 1
    line = error_line(result.stderr)
    for needle in ("document 2", "10.96.0.10", "default/dns"):
        assert needle in line
    assert store_state(state) == before
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
    before = store_state(state)
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    assert result.exit_code == 1
    assert "10.96.0.0/30" in error_line(result.stderr)
    assert store_state(state) == before


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
    before = store_state(state)
    for args in (["allocate-service", "-f", str(SEED_FILE)], ["release-service", "default/x"]):
        result = invoke(*args, "--state", state)
        assert result.exit_code == 2
        assert "no Service range" in error_line(result.stderr)
    assert store_state(state) == before
    shown = ok_json("show", "--state", state)
    assert shown["services"] == {}
    assert shown["usage"] == {
        "IPv4": {
            "node_cidrs": {"capacity": 256, "reserved": 0, "used": 1, "free": 255},
            "service_ips": None,
        }
    }
