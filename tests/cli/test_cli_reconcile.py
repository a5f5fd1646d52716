"""``reconcile -f TRUTH [--repair] [--leak-grace N]``: the store against kubectl's truth."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cli_support import error_line, invoke, ok_json, store_state
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dualstack_ipam.cli import run_reconcile, run_show

NODE_1 = ["10.244.0.0/24", "fc00::/64"]
NODE_2 = ["10.244.5.0/24", "fc00:0:0:5::/64"]


def node(name: str, cidrs: list[str] | None = None, single: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if cidrs is not None:
        spec = {"podCIDR": cidrs[0]} if single else {"podCIDR": cidrs[0], "podCIDRs": cidrs}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


def service(key: str, ips: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    namespace, name = key.split("/")
    if ips is not None:
        spec = {"clusterIP": ips[0], "clusterIPs": ips, **spec}
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def kubectl_list(*items: dict[str, Any]) -> str:
    """What ``kubectl get nodes,svc -A -o json`` prints (YAML reads it too)."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


TRUTH = kubectl_list(
    node("node-1", NODE_1),
    node("node-2", NODE_2),
    node("node-new"),  # no podCIDRs yet: holds nothing
    service("default/kubernetes", ["10.96.0.1"]),
    service("kube-system/dns", ["10.96.0.10", "fd00:10:96::a"]),
    service("default/db", clusterIP="None"),
    service("default/ext", type="ExternalName", externalName="example.com"),
)


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A store holding node-1 (as the truth), node-9 (leaked) and default/old (leaked)."""
    path = str(tmp_path / "ipam.db")
    ok_json("allocate-node", "node-1", "--state", path)
    ok_json("allocate-node", "node-9", "--state", path)
    manifest = "metadata: {name: old}\nspec: {clusterIP: 10.96.0.99}\n"
    assert invoke("allocate-service", "-f", "-", "--state", path, input=manifest).exit_code == 0
    return path


def reconcile(state: str, *args: str, truth: str = TRUTH) -> Any:
    return invoke("reconcile", "-f", "-", "--state", state, *args, input=truth)


def test_report_only_changes_nothing_and_exits_4(state: str) -> None:
    before = store_state(state)
    result = reconcile(state)
    assert result.exit_code == 4, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"Reconciled {state} with stdin: 3 Nodes, 4 Services (report only)"
    assert lines[1].split() == ["KIND", "KEY", "FOUND", "HELD", "TRUTH"]
    rows = {tuple(line.split()[:3]) for line in lines[2:-1]}
    assert rows == {
        ("node", "node-2", "missing"),
        ("node", "node-9", "leaked"),
        ("service", "default/kubernetes", "missing"),
        ("service", "kube-system/dns", "missing"),
        ("service", "default/old", "leaked"),
    }
    assert lines[-1].startswith("5 differences found; nothing was changed")
    assert store_state(state) == before


def test_repair_makes_the_store_the_truth(state: str) -> None:
    result = reconcile(state, "--repair", "--leak-grace", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "Repaired: in sync with the truth."
    assert "node     node-9              leaked" in result.stdout
    shown = ok_json("show", "--state", state)
    assert shown["nodes"] == {"node-1": NODE_1, "node-2": NODE_2}
    assert shown["services"] == {
        "default/kubernetes": ["10.96.0.1"],
        "kube-system/dns": ["10.96.0.10", "fd00:10:96::a"],
    }
    again = reconcile(state)
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1] == "In sync with the truth."


def test_leak_counts_add_up_across_runs(state: str) -> None:
    first = json.loads(reconcile(state, "--repair", "--leak-grace", "2", "--json").stdout)
    assert first["ok"] is False
    assert set(first["nodes"]["leaked"]) == {"node-9"}
    assert first["nodes"]["released"] == {}
    second = reconcile(state, "--repair", "--leak-grace", "2", "--json")
    assert second.exit_code == 0, second.stdout
    data = json.loads(second.stdout)
    assert data["nodes"]["released"] == {"node-9": ["10.244.1.0/24", "fc00:0:0:1::/64"]}
    assert data["services"]["released"] == {"default/old": ["10.96.0.99"]}


def test_json_report(state: str) -> None:
    result = reconcile(state, "--json")
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    assert set(data) == {"store", "repair", "leak_grace", "ok", "nodes", "services", "skipped"}
    assert (data["repair"], data["leak_grace"], data["ok"], data["skipped"]) == (
        False,
        3,
        False,
        {},
    )
    assert data["nodes"]["missing"] == {"node-2": NODE_2}
    assert data["services"]["leaked"] == {"default/old": ["10.96.0.99"]}


def test_conflicts_and_out_of_range_remain(state: str) -> None:
    truth = kubectl_list(
        node("node-1", NODE_1),
        node("node-9", ["10.244.1.0/24", "fc00:0:0:1::/64"]),
        service("default/old", ["10.96.0.99"]),
        service("default/new", ["10.96.0.99"]),  # the truth gives it twice
        service("default/far", ["192.168.0.1"]),
    )
    result = reconcile(state, "--repair", "--leak-grace", "1", truth=truth)
    assert result.exit_code == 4
    assert "default/old, default/new  conflict" in result.stdout
    assert "default/far" in result.stdout
    assert "out of range" in result.stdout
    assert result.stdout.splitlines()[-1] == "3 differences remain."
    # Never stolen, never freed.
    assert ok_json("show", "--state", state)["services"] == {"default/old": ["10.96.0.99"]}


def test_a_stream_of_documents_from_files(state: str, tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(
        "kind: Node\nmetadata: {name: node-1}\nspec: {podCIDR: 10.244.0.0/24}\n---\n"
        "kind: Node\nmetadata: {name: node-9}\n"
        "spec:\n  podCIDRs: [10.244.1.0/24, 'fc00:0:0:1::/64']\n"
    )
    services = tmp_path / "svc.json"
    services.write_text(json.dumps([service("default/old", ["10.96.0.99"])]))
    result = invoke(
        "reconcile", "-f", str(nodes), "-f", str(services), "--state", state, "--repair"
    )
    # node-1 holds an IPv6 CIDR the truth (podCIDR alone) does not list: fixed.
    assert result.exit_code == 0, result.stdout
    assert ok_json("show", "--state", state)["nodes"]["node-1"] == ["10.244.0.0/24"]


def test_a_kind_absent_from_the_truth_is_not_reconciled(state: str) -> None:
    truth = kubectl_list(node("node-1", NODE_1), node("node-9"))
    result = reconcile(state, "--repair", "--leak-grace", "1", truth=truth)
    assert result.exit_code == 0, result.stdout
    assert "Services not reconciled: no Service in the truth" in result.stdout
    shown = ok_json("show", "--state", state)
    assert shown["services"] == {"default/old": ["10.96.0.99"]}  # untouched
    assert shown["nodes"] == {"node-1": NODE_1}  # node-9 holds nothing in the truth
    data = json.loads(reconcile(state, "--json", truth=truth).stdout)
    assert data["services"] is None
    assert data["skipped"] == {"services": "no Service in the truth"}


def test_a_cluster_without_service_range(tmp_path: Path) -> None:
    path = str(tmp_path / "v4.db")
    assert invoke("init", "--cluster-cidr=10.244.0.0/16", "--state", path).exit_code == 0
    truth = kubectl_list(node("a", ["10.244.3.0/24"]), service("default/kubernetes", ["1.2.3.4"]))
    result = reconcile(path, "--repair", truth=truth)
    assert result.exit_code == 0, result.stdout
    assert "Services not reconciled: the cluster has no Service range" in result.stdout
    assert ok_json("show", "--state", path)["nodes"] == {"a": ["10.244.3.0/24"]}


@pytest.mark.parametrize(
    ("truth", "says"),
    [
        (
            kubectl_list({"kind": "Pod", "metadata": {"name": "p"}}),
            "stdin document 1 items[0]: kind",
        ),
        (
            kubectl_list(node("a", ["10.244.0.0/24", "nonsense"])),
            "items[0]: Node 'a' spec.podCIDRs[1]",
        ),
        (kubectl_list(node("a", ["10.244.0.0/24", "10.244.1.0/24"])), "two IPv4 entries"),
        (kubectl_list(node("a"), node("a")), "items[1]: Node 'a' again (first in stdin document 1"),
        (kubectl_list(service("default/x", ["10.96.0.1", "10.96.0.2"])), "spec.clusterIPs: two"),
        (kubectl_list(service("default/x", ["10.96.0.1/32"])), "spec.clusterIPs[0]"),
        (kubectl_list(service("default/UPPER", ["10.96.0.1"])), "metadata.name"),
        (kubectl_list(node("")), "metadata.name"),
        ('{"kind": "List", "items": 3}', "items: must be a list"),
        ("kind: List\nitems: []\n", "no Node and no Service in stdin"),
        ("a: [1\n", "stdin: not YAML or JSON data"),
        ("- 1\n- 2\n", "stdin document 1: object: must be Node or Service"),
    ],
)
def test_bad_truth_exits_2_and_changes_nothing(state: str, truth: str, says: str) -> None:
    before = store_state(state)
    result = reconcile(state, "--repair", "--leak-grace", "1", truth=truth)
    assert result.exit_code == 2, result.stdout
    assert says in error_line(result.stderr)
    assert result.stdout == ""
    assert store_state(state) == before


def test_bad_arguments(state: str) -> None:
    assert invoke("reconcile", "--state", state).exit_code == 2  # no -f
    zero = reconcile(state, "--leak-grace", "0")
    assert zero.exit_code == 2
    assert "--leak-grace takes a count >= 1, got 0" in error_line(zero.stderr)
    assert reconcile(state, "--leak-grace", "x").exit_code == 2


# ------------------------------------------------------------------ property

CIDRS = [f"10.244.{i}.0/24" for i in range(4)]
IPS = [f"10.96.0.{i}" for i in range(1, 5)]


@settings(max_examples=12)
@given(
    held=st.dictionaries(st.sampled_from("abcd"), st.sampled_from(range(4)), max_size=4),
    truth=st.dictionaries(st.sampled_from("abcde"), st.sampled_from(range(4)), max_size=4),
)
def test_repair_with_grace_1_ends_in_sync_when_the_truth_is_consistent(
    held: dict[str, int], truth: dict[str, int]
) -> None:
    """Any drift between store and a truth that gives each slot once: one repair syncs."""
    # A truth giving one address twice is a conflict; held addresses are unique.
    assume(len(set(truth.values())) == len(truth) and len(set(held.values())) == len(held))
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        state = str(folder / "s.db")
        seed = kubectl_list(
            *(node(k, [CIDRS[v]], single=True) for k, v in held.items()),
            *(service(f"default/{k}", [IPS[v]]) for k, v in held.items()),
        )
        (folder / "seed.json").write_text(seed if held else kubectl_list(node("x")))
        run_reconcile([str(folder / "seed.json")], state, repair=True, leak_grace=1)
        (folder / "truth.json").write_text(
            kubectl_list(
                node("zz"),  # always a Node and a Service document: both reconciled
                service("default/zz"),
                *(node(k, [CIDRS[v]], single=True) for k, v in truth.items()),
                *(service(f"default/{k}", [IPS[v]]) for k, v in truth.items()),
            )
        )
        out = run_reconcile([str(folder / "truth.json")], state, repair=True, leak_grace=1)
        assert out.in_sync, str(out)
        shown = json.loads(run_show(state, as_json=True))
        assert shown["nodes"] == {k: [CIDRS[v]] for k, v in truth.items()}
        assert shown["services"] == {f"default/{k}": [IPS[v]] for k, v in truth.items()}
        assert run_reconcile([str(folder / "truth.json")], state).in_sync
