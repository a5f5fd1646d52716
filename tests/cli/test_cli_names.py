"""Node names: the CLI accepts exactly what the library accepts.

Issue 8: ``allocate-node`` refused names the library takes (it checked
DNS-1123 on its own). Node keys are plain non-empty strings in the library,
and the CLI passes them through unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import error_line, invoke, ok_json
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam import IPAMError, NodeCIDRAllocator
from dualstack_ipam.cli import DEFAULT_CONFIG

NAMES = ["Node_A", "node-", "a" * 254, "node a", "Worker.Example.COM", "nœud-1", "节点", "-x"]


@pytest.fixture
def state(tmp_path: Path) -> str:
    return str(tmp_path / "state.json")


@pytest.mark.parametrize("name", NAMES)
def test_names_the_library_takes_are_taken(state: str, name: str) -> None:
    NodeCIDRAllocator(DEFAULT_CONFIG).allocate(name)  # the library takes it...
    got = ok_json("allocate-node", "--state", state, "--", name)  # ...and so does the CLI
    assert got["node"] == name
    assert ok_json("show", "--state", state)["nodes"] == {name: got["cidrs"]}
    released = ok_json("release-node", "--state", state, "--", name)
    assert released["released"] is True


def test_an_empty_name_is_refused_by_the_library(state: str) -> None:
    with pytest.raises(IPAMError):
        NodeCIDRAllocator(DEFAULT_CONFIG).allocate("")
    for command in ("allocate-node", "release-node"):
        result = invoke(command, "", "--state", state)
        assert result.exit_code == 2
        assert "''" in error_line(result.stderr)
    assert not Path(state).exists() or ok_json("show", "--state", state)["nodes"] == {}


def _library_verdict(name: str) -> bool:
    try:
        NodeCIDRAllocator(DEFAULT_CONFIG).allocate(name)
    except IPAMError:
        return False
    return True


@settings(max_examples=25)
@given(name=st.text(max_size=12))
def test_cli_and_library_agree_on_every_name(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    state = str(tmp_path_factory.mktemp("names") / "state.json")
    result = invoke("allocate-node", "--state", state, "--", name)
    assert result.exit_code == (0 if _library_verdict(name) else 2), result.stderr
