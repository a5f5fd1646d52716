"""``plan`` and ``init`` with ``--ignore-unknown``: a whole kube-controller-manager line.

Issue 8, defect 7: ``from_flags`` refused every flag it does not read, so the
command line of a real kube-controller-manager could not be planned. The
line below is kubeadm's static Pod for a dual-stack cluster, with some flags
rewritten in the ``--flag value`` form and a bare boolean, as people type
them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import error_line, invoke, ok_json, run

from dualstack_ipam import ClusterConfig

KUBE_CONTROLLER_MANAGER = [
    "--allocate-node-cidrs=true",
    "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
    "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
    "--bind-address=127.0.0.1",
    "--client-ca-file=/etc/kubernetes/pki/ca.crt",
    "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56",
    "--cluster-name=kubernetes",
    "--cluster-signing-cert-file",
    "/etc/kubernetes/pki/ca.crt",
    "--cluster-signing-key-file",
    "/etc/kubernetes/pki/ca.key",
    "--controllers=*,bootstrapsigner,tokencleaner",
    "--kubeconfig",
    "/etc/kubernetes/controller-manager.conf",
    "--leader-elect",
    "--node-cidr-mask-size-ipv4",
    "24",
    "--node-cidr-mask-size-ipv6=64",
    "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
    "--root-ca-file=/etc/kubernetes/pki/ca.crt",
    "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
    "--service-cluster-ip-range",
    "10.96.0.0/16,fd00:10:96::/112",
    "--use-service-account-credentials=true",
    "--v",
    "2",
]
EXPECTED = ClusterConfig(
    ["10.244.0.0/16", "fd00:10:244::/56"],
    ["10.96.0.0/16", "fd00:10:96::/112"],
    node_mask_ipv4=24,
    node_mask_ipv6=64,
)


@pytest.mark.parametrize("where", ["first", "last"])
def test_plan_a_kube_controller_manager_line(where: str) -> None:
    args = (
        ["--ignore-unknown", *KUBE_CONTROLLER_MANAGER]
        if where == "first"
        else [*KUBE_CONTROLLER_MANAGER, "--ignore-unknown"]
    )
    data = ok_json("plan", *args)
    assert data["config"] == EXPECTED.to_dict()
    assert data["families"]["IPv6"]["nodes"] == 2**8


def test_without_the_flag_unknown_flags_are_bad_input() -> None:
    result = invoke("plan", *KUBE_CONTROLLER_MANAGER)
    assert result.exit_code == 2
    assert "--authentication-kubeconfig" in error_line(result.stderr)


def test_known_flags_are_still_checked() -> None:
    result = invoke("plan", "--ignore-unknown", "--leader-elect", "--cluster-cidr=10.0.0.0/33")
    assert result.exit_code == 2
    assert "10.0.0.0/33" in error_line(result.stderr)


def test_init_a_kube_controller_manager_line_subprocess(tmp_path: Path) -> None:
    proc = run("init", *KUBE_CONTROLLER_MANAGER, "--ignore-unknown", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run("allocate-node", "node-1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"fd00:10:244::/64"' in proc.stdout
    refused = run("init", *KUBE_CONTROLLER_MANAGER, "--state", "other.json", cwd=tmp_path)
    assert refused.returncode == 2
    assert "unknown flag" in error_line(refused.stderr)
    assert not (tmp_path / "other.json").exists()
