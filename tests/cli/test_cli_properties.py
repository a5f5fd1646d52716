"""Properties of the CLI on the store, over random command sequences (real SQLite files)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam.cli import (
    run_allocate_node,
    run_allocate_service,
    run_export,
    run_import,
    run_log,
    run_release_node,
    run_release_service,
    run_show,
)

NAMES = st.sampled_from(["a", "b", "c", "d"])
COMMANDS = st.lists(
    st.tuples(st.sampled_from(["+node", "-node", "+svc", "-svc"]), NAMES), max_size=12
)


def _run(folder: Path, state: str, command: str, name: str) -> None:
    if command == "+node":
        run_allocate_node(name, state)
    elif command == "-node":
        run_release_node(name, state)
    elif command == "+svc":
        source = folder / f"{name}.json"
        spec = {"ipFamilyPolicy": "PreferDualStack"}
        source.write_text(json.dumps({"metadata": {"name": name}, "spec": spec}))
        run_allocate_service([str(source)], state)
    else:
        run_release_service(f"default/{name}", [], state)


@settings(max_examples=10)
@given(COMMANDS)
def test_export_import_round_trip_and_journal(commands: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        state, copy = str(folder / "a.db"), str(folder / "b.db")
        for command, name in commands:
            _run(folder, state, command, name)
        shown = json.loads(run_show(state, as_json=True))
        backup = folder / "backup.json"
        run_export(state, output=str(backup))
        run_import(str(backup), copy)
        assert json.loads(run_show(copy, as_json=True)) == shown
        # The journal's last entry per key says what the key holds now.
        last: dict[str, list[str]] = {}
        for entry in json.loads(run_log(state, as_json=True)):
            last[entry["key"]] = entry["addresses"]
        held = {**shown["nodes"], **shown["services"]}
        assert {key: value for key, value in last.items() if value} == held
