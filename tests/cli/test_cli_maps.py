"""``show --svg/--html/--forecast`` and ``plan --nodes-per-day/--services-per-day`` (issue 12).

The files are written and parse (the SVG as XML, the HTML page holding the
SVG); ``--json`` gains ``files`` and ``forecast``; a bad rate and a map file
that cannot be written exit 2 with one stderr line and change nothing,
not even a missing state file (``show`` creates one only when it succeeds).
"""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_support import SEED_FLAGS, allocate_seed, error_line, invoke, ok_json, run, store_state

from dualstack_ipam import ClusterConfig
from dualstack_ipam.cli import main, run_plan, run_show

SVG = "{http://www.w3.org/2000/svg}"
DAY = datetime.date(2026, 1, 1)


def _state_with_a_node_and_services(tmp_path: Path) -> Path:
    state = tmp_path / "state.db"
    assert invoke("allocate-node", "node-1", "--state", str(state)).exit_code == 0
    allocate_seed(str(state))
    return state


# ------------------------------------------------------------------ show: maps


def test_show_writes_the_svg_and_the_html_page(tmp_path: Path) -> None:
    state = _state_with_a_node_and_services(tmp_path)
    before = store_state(str(state))
    proc = run(
        "show", "--state", str(state), "--svg", "map.svg", "--html", "page.html", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Wrote map.svg (SVG)\nWrote page.html (HTML)" in proc.stdout
    root = ET.fromstring((tmp_path / "map.svg").read_text(encoding="utf-8"))
    assert root.tag == f"{SVG}svg"
    # One panel per family of each allocator: node CIDRs and Service IPs, dual-stack.
    assert len(root.findall(f".//{SVG}g[@class='panel']")) == 4
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1
    assert "node-1" in page
    assert "default/my-service-ipv6" in page
    assert store_state(str(state)) == before  # read, never rewritten


def test_show_json_names_the_files_and_the_forecast(tmp_path: Path) -> None:
    state = _state_with_a_node_and_services(tmp_path)
    svg = tmp_path / "map.svg"
    data = ok_json("show", "--state", str(state), "--svg", str(svg), "--forecast")
    assert data["files"] == {"svg": str(svg)}
    assert set(data) == {"config", "nodes", "services", "usage", "files", "forecast"}
    ranges = data["forecast"]["ranges"]
    assert [(r["family"], r["kind"]) for r in ranges] == [
        ("IPv4", "node_cidrs"),
        ("IPv6", "node_cidrs"),
        ("IPv4", "service_ips"),
        ("IPv6", "service_ips"),
    ]
    # The default rates are 0: no range ever runs out; what is held is counted.
    assert all(r["runs_out"] is None and r["days_left"] is None for r in ranges)
    assert [r["used"] for r in ranges] == [1, 1, 2, 1]
    ET.fromstring(svg.read_text(encoding="utf-8"))


def test_show_json_without_map_options_is_unchanged(tmp_path: Path) -> None:
    data = ok_json("show", "--state", str(tmp_path / "state.json"))
    assert set(data) == {"config", "nodes", "services", "usage"}


def test_show_forecast_counts_from_the_state_at_the_rates_given(tmp_path: Path) -> None:
    state = _state_with_a_node_and_services(tmp_path)
    text = run_show(str(state), nodes_per_day="5", services_per_day="IPv4=100,IPv6=1", now=DAY)
    forecast = text[text.index("Forecast from 2026-01-01") :].splitlines()
    assert forecast[2].split() == [
        "IPv4", "node", "CIDRs", "10.244.0.0/16", "256", "1", "5", "51", "2026-02-21"
    ]  # fmt: skip
    assert forecast[5].split()[-2:] == ["65534", "2205-06-06"]  # 65,534 free at 1 a day
    # A rate alone implies --forecast; without one every range says "never".
    assert "Forecast from" in run_show(str(state), nodes_per_day="1")
    never = run_show(str(state), show_forecast=True)
    assert never.count("never") == 4
    assert never.saved is None


def test_show_on_a_missing_state_file_with_maps_creates_it(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    out = run_show(str(state), svg=str(tmp_path / "map.svg"))
    assert out.saved == str(state)
    assert state.exists()
    assert (tmp_path / "map.svg").exists()


# ------------------------------------------------------------------ plan


def test_plan_prints_the_forecast_after_the_plan() -> None:
    text = run_plan(SEED_FLAGS, nodes_per_day="10", services_per_day="100", now=DAY)
    plan, _, forecast = text.partition("\n\nForecast from 2026-01-01")
    assert plan == run_plan(SEED_FLAGS)
    lines = forecast.splitlines()
    assert lines[2].split()[-2:] == ["25", "2026-01-26"]
    assert lines[3].split()[-1] == "9999-12-31"  # "after 9999-12-31"
    assert lines[4].split()[-2:] == ["10485", "2054-09-16"]
    assert lines[5].split()[-1] == "never"  # a number counts the primary family only


def test_plan_forecast_equals_the_library_forecast() -> None:
    config = ClusterConfig.from_flags(SEED_FLAGS)
    text = run_plan(SEED_FLAGS, services_per_day="IPv6=3", now=DAY)
    assert text.endswith(str(config.forecast(services_per_day={"IPv6": 3}, now=DAY)))


def test_plan_json_has_a_forecast_key_only_with_a_rate() -> None:
    data = ok_json("plan", *SEED_FLAGS, "--nodes-per-day", "2", "--services-per-day=IPv4=1,IPv6=1")
    assert [r["rate_per_day"] for r in data["forecast"]["ranges"]] == [2, 2, 1, 1]
    assert data["forecast"]["today"] == datetime.datetime.now(datetime.UTC).date().isoformat()
    assert "forecast" not in ok_json("plan", *SEED_FLAGS)


def test_plan_through_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *SEED_FLAGS, "--nodes-per-day=0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["forecast"]["ranges"][0]["days_left"] == 512


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--nodes-per-day", "-1"),
        ("--nodes-per-day", "abc"),
        ("--nodes-per-day", "inf"),
        ("--nodes-per-day", "nan"),
        ("--nodes-per-day", "IPv4=1"),  # a node takes a CIDR of every family
        ("--services-per-day", "IPv4=1,IPv4=2"),
        ("--services-per-day", "IPv5=1"),
        ("--services-per-day", "IPv4=x"),
    ],
)
def test_bad_rates_exit_2_and_quote_the_value(option: str, value: str, tmp_path: Path) -> None:
    result = invoke("plan", *SEED_FLAGS, f"{option}={value}")
    assert result.exit_code == 2
    assert repr(value) in error_line(result.stderr)
    assert result.stdout == ""
    state = tmp_path / "state.db"
    result = invoke("show", "--state", str(state), "--svg", str(tmp_path / "m.svg"), option, value)
    assert result.exit_code == 2
    assert repr(value) in error_line(result.stderr)
    # Nothing changed: neither the missing state file nor the map was written.
    assert not state.exists()
    assert not (tmp_path / "m.svg").exists()


def test_a_service_rate_for_a_family_without_a_range_exits_2(tmp_path: Path) -> None:
    result = invoke("plan", "--cluster-cidr=10.0.0.0/16", "--services-per-day", "1")
    assert result.exit_code == 2
    assert "no Service range" in error_line(result.stderr)
    result = invoke(
        "plan",
        "--cluster-cidr=10.0.0.0/16",
        "--service-cluster-ip-range=10.96.0.0/24",
        "--services-per-day=IPv6=1",
    )
    assert result.exit_code == 2
    assert "IPv6" in error_line(result.stderr)


def test_a_map_file_that_cannot_be_written_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    missing_dir = tmp_path / "no-such-dir" / "map.svg"
    # An existing state file is left as it was.
    state = _state_with_a_node_and_services(tmp_path)
    before = store_state(str(state))
    proc = run("show", "--state", str(state), "--html", str(missing_dir), cwd=tmp_path)
    assert proc.returncode == 2
    line = error_line(proc.stderr)
    assert repr(str(missing_dir)) in line
    assert line.endswith("nothing was changed")
    assert proc.stdout == ""
    assert store_state(str(state)) == before
    # A missing one is not created: 2 means nothing changed.
    fresh = tmp_path / "fresh.db"
    proc = run("show", "--state", str(fresh), "--svg", str(missing_dir), cwd=tmp_path)
    assert proc.returncode == 2
    error_line(proc.stderr)
    assert not fresh.exists()


def test_a_map_file_that_is_the_store_file_is_refused(tmp_path: Path) -> None:
    state = _state_with_a_node_and_services(tmp_path)
    before = store_state(str(state))
    link = tmp_path / "link.db"
    link.symlink_to(state)
    # Writing the map there would destroy the store (or its log).
    for target in (str(state), str(link), f"{state}-wal", f"{state}-shm"):
        result = invoke("show", "--state", str(state), "--svg", target)
        assert result.exit_code == 2
        assert "is the store" in error_line(result.stderr)
    assert store_state(str(state)) == before
