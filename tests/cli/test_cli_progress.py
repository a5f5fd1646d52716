"""The progress bar: drawn on stderr when it is a terminal (a real pty here), else nothing."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_support import invoke

from dualstack_ipam.cli import main
from dualstack_ipam.cli.progress import MIN_ITEMS, progress, stderr_is_terminal

COUNT = MIN_ITEMS + 20


def services_file(folder: Path) -> Path:
    path = folder / "many.json"
    docs = [{"metadata": {"name": f"svc-{i}"}} for i in range(COUNT)]
    path.write_text(json.dumps(docs))
    return path


def truth_file(folder: Path) -> Path:
    path = folder / "truth.json"
    items = [
        {"kind": "Node", "metadata": {"name": f"n{i}"}, "spec": {"podCIDR": f"10.244.{i}.0/24"}}
        for i in range(COUNT)
    ]
    path.write_text(json.dumps({"kind": "List", "items": items}))
    return path


def on_a_terminal(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> tuple[int, str]:
    """Run the CLI in-process with stderr on a pty; its exit code and what the pty got."""
    master, slave = os.openpty()
    received: list[bytes] = []

    def drain() -> None:  # a full pty would block the writer
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the slave side is closed
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    terminal = open(slave, "w", encoding="utf-8")  # noqa: SIM115  # closed below
    try:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert stderr_is_terminal()
        code = main(argv)
    finally:
        monkeypatch.undo()
        terminal.close()
        reader.join(timeout=30)
        os.close(master)
    return code, b"".join(received).decode("utf-8", "replace")


def test_allocate_service_draws_a_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    source = str(services_file(tmp_path))
    code, drawn = on_a_terminal(
        monkeypatch, ["allocate-service", "-f", source, "--store", "memory://"]
    )
    assert code == 0
    assert "allocate-service" in drawn
    assert "100%" in drawn
    assert "\r" in drawn  # redrawn in place
    assert capsys.readouterr().out.count("# default/svc-") == COUNT  # stdout as always


def test_reconcile_draws_a_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    source, state = str(truth_file(tmp_path)), str(tmp_path / "s.db")
    code, drawn = on_a_terminal(monkeypatch, ["reconcile", "-f", source, "--state", state])
    assert code == 4  # everything missing
    assert "reconcile" in drawn
    assert "100%" in drawn
    assert "Reconciled" in capsys.readouterr().out


def test_nothing_is_drawn_without_a_terminal(tmp_path: Path) -> None:
    result = invoke("allocate-service", "-f", str(services_file(tmp_path)), "--store", "memory://")
    assert result.exit_code == 0
    assert result.stderr == ""
    state = str(tmp_path / "s.db")
    result = invoke("reconcile", "-f", str(truth_file(tmp_path)), "--state", state, "--repair")
    assert result.exit_code == 0, result.stdout
    assert result.stderr == ""


def test_little_work_draws_no_bar_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(stream, "isatty", lambda: True)
    monkeypatch.setattr(sys, "stderr", stream)
    with progress(MIN_ITEMS - 1, "small") as advance:
        advance(MIN_ITEMS - 1)
    with progress(MIN_ITEMS, "large") as advance:
        advance(MIN_ITEMS)
    assert "small" not in stream.getvalue()
    assert "large" in stream.getvalue()


def test_an_error_in_the_work_goes_through_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(stream, "isatty", lambda: True)
    monkeypatch.setattr(sys, "stderr", stream)
    with pytest.raises(OSError, match="disk"), progress(MIN_ITEMS, "work"):
        raise OSError("disk")
    assert stream.getvalue().endswith("\n")  # the bar's line is ended


def test_import_draws_a_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    old, new = str(tmp_path / "old.db"), str(tmp_path / "new.db")
    filled = invoke("reconcile", "-f", str(truth_file(tmp_path)), "--state", old, "--repair")
    assert filled.exit_code == 0, filled.stdout
    backup = tmp_path / "backup.json"
    assert invoke("export", "--state", old, "--output", str(backup)).exit_code == 0
    code, drawn = on_a_terminal(monkeypatch, ["import", str(backup), "--state", new])
    assert code == 0
    assert "import" in drawn
    assert "100%" in drawn
    assert f"Imported {COUNT} nodes" in capsys.readouterr().out
