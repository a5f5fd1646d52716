"""A multi-document ``allocate-service`` on the store: checked first, then ONE transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import error_line, invoke, ok_json

import dualstack_ipam
from dualstack_ipam.cli.ground import CLIError
from dualstack_ipam.cli.service_commands import _check_documents, txn_limit
from dualstack_ipam.store import TxnLimits


def doc(name: str, ip: str | None = None) -> str:
    spec = f"{{clusterIP: {ip}}}" if ip else "{}"
    return f"---\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def test_a_refusal_keeps_what_existed_and_writes_nothing(tmp_path: Path) -> None:
    state = str(tmp_path / "ipam.db")
    ok_json("allocate-service", "-f", "-", "--state", state, input=doc("old"))
    ok_json("allocate-service", "-f", "-", "--state", state, input=doc("dns", "10.96.0.10"))
    before = ok_json("show", "--state", state)["services"]
    journal = ok_json("log", "--state", state)
    # old exists (a no-op), new would be made, then clash asks for dns's address.
    text = doc("old") + doc("new") + doc("clash", "10.96.0.10")
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    assert result.exit_code == 1
    assert "document 3" in error_line(result.stderr)
    assert ok_json("show", "--state", state)["services"] == before
    # One transaction, never committed: new was not made and undone, it was never written.
    assert ok_json("log", "--state", state) == journal


def test_bad_documents_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    state = str(tmp_path / "ipam.db")
    ok_json("allocate-node", "n1", "--state", state)
    journal = ok_json("log", "--state", state)
    # The third document is invalid: the first two are never allocated.
    text = doc("a") + doc("b") + doc("c", "10.200.0.1")
    result = invoke("allocate-service", "-f", "-", "--state", state, input=text)
    assert result.exit_code == 2
    assert "document 3" in error_line(result.stderr)
    assert ok_json("log", "--state", state) == journal


def test_more_documents_than_one_transaction_takes_are_refused(tmp_path: Path) -> None:
    with dualstack_ipam.open(
        f"sqlite://{tmp_path / 'ipam.db'}",
        dualstack_ipam.ClusterConfig("10.244.0.0/16", "10.96.0.0/24"),
    ) as cluster:
        assert txn_limit(cluster) is None  # SQLite has no limit of its own
        # The backend's limit as etcd sets it (a real setting of the real backend).
        cluster._backend.limits = TxnLimits(max_ops=2)
        documents = [(f"stdin document {i}", {"metadata": {"name": f"s{i}"}}) for i in range(3)]
        with pytest.raises(CLIError, match=r"max_ops = 2") as caught:
            _check_documents(cluster, documents)
        assert caught.value.exit_code == 2
        _check_documents(cluster, documents[:2])
        assert len(cluster.services) == 0
