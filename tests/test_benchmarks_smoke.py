"""The benchmark scripts run at a tiny size, so that they cannot rot unnoticed.

Only that they run, check what they build and report every goal: no figure
is judged here (the suite asserts no timings).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_restart
from benchmarks._common import write_json


def test_bench_restart_runs_at_a_tiny_size(tmp_path: Path) -> None:
    result = bench_restart.run(nodes=12, services=90, dual=9, rounds=1, quick=True)
    # 12 nodes x 2 CIDRs + 81 single-stack + 9 x 2 dual-stack Service IPs.
    assert result["addresses"] == 24 + 81 + 18
    assert set(result["cases"]) == {*bench_restart.CASES, "reconcile"}
    assert [goal["limit"] for goal in result["goals"]] == [
        bench_restart.OCCUPY_GOAL,
        bench_restart.RECONCILE_GOAL,
    ]
    drift = result["drift"]
    assert drift["nodes"] == {"missing": 1, "leaked": 1, "mismatched": 1}
    assert sum(drift["services"].values()) == 3
    text = bench_restart.report(result)
    assert "PASS" in text or "FAIL" in text
    path = tmp_path / "restart.json"
    write_json(str(path), result)
    assert json.loads(path.read_text())["nodes"] == 12
