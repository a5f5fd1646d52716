"""dualstack_ipam.testing.pytest_plugin, run in real pytest subprocesses, and the docs' example.

Each subprocess runs in a fresh directory (so this project's pytest
configuration does not apply), the way a user's project would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dualstack_ipam import ClusterConfig
from dualstack_ipam.testing import strategies as ds
from dualstack_ipam.testing.pytest_plugin import draw_seeded

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

USER_TESTS = """
import json, os
import pytest
from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
from dualstack_ipam.services.allocator import ServiceIPAllocator

def record(name, config):
    with open(os.environ["RECORD"], "a") as out:
        out.write(json.dumps([name, config.to_dict()]) + "\\n")

def test_config(cluster_config):
    assert isinstance(cluster_config, ClusterConfig)
    assert cluster_config.service_families and cluster_config.max_nodes >= 1
    record("config", cluster_config)

def test_allocators(cluster_config, node_allocator, service_allocator):
    assert node_allocator.config == service_allocator.config == cluster_config
    assert len(node_allocator.allocate("node-a")) == len(cluster_config.families)
    assert service_allocator.allocate("dns") in cluster_config.service_cidrs[0]
    node_allocator._check_invariants()
    service_allocator._check_invariants()
    record("allocators", cluster_config)

@pytest.mark.dualstack_ipam(dual_stack=True, primary_family="IPv6", min_service_ranges=2)
def test_marker(cluster_config):
    assert cluster_config.is_dual_stack
    assert str(cluster_config.primary_family) == "IPv6"
    assert len(cluster_config.service_cidrs) == 2
    record("marker", cluster_config)

def test_seed_fixture(dualstack_ipam_seed):
    assert isinstance(dualstack_ipam_seed, int)
"""

FAILING_TEST = """
def test_fails(cluster_config):
    assert not cluster_config.cluster_cidrs
"""


def run_pytest(
    directory: Path, *args: str, plugin: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[list[object]]]:
    record = directory / "record.jsonl"
    record.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    if plugin:
        command[3:3] = ["-p", "dualstack_ipam.testing.pytest_plugin"]
    done = subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        env={**_environ(), "RECORD": str(record)},
    )
    lines = record.read_text().splitlines() if record.exists() else []
    return done, [json.loads(line) for line in lines]


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    return tmp_path


def test_fixtures_work_and_are_reproducible(project: Path) -> None:
    first, records = run_pytest(project, "-p", "no:randomly")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 passed" in first.stdout
    assert "dualstack_ipam: --dualstack-ipam-seed=0" in first.stdout
    assert sorted(str(name) for name, _ in records) == ["allocators", "config", "marker"]
    again, repeated = run_pytest(project, "-p", "no:randomly")
    assert again.returncode == 0
    assert sorted(map(json.dumps, repeated)) == sorted(map(json.dumps, records))
    other, reseeded = run_pytest(project, "--dualstack-ipam-seed=12345")
    assert other.returncode == 0, other.stdout + other.stderr
    assert "dualstack_ipam: --dualstack-ipam-seed=12345" in other.stdout
    assert sorted(map(json.dumps, reseeded)) != sorted(map(json.dumps, records))
    for _, data in records + reseeded:
        ClusterConfig.from_dict(data)


def test_a_failure_reports_seed_and_cluster(project: Path) -> None:
    (project / "test_user.py").write_text(FAILING_TEST)
    done, _ = run_pytest(project, "--dualstack-ipam-seed=7")
    assert done.returncode == 1
    assert "dualstack_ipam" in done.stdout
    assert "--dualstack-ipam-seed=7 (test seed" in done.stdout
    assert "cluster_config = ClusterConfig(" in done.stdout


def test_opt_in_through_pytest_plugins(project: Path) -> None:
    (project / "conftest.py").write_text(
        'pytest_plugins = ["dualstack_ipam.testing.pytest_plugin"]\n'
    )
    done, records = run_pytest(project, plugin=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(records) == 3


def test_without_the_plugin_there_are_no_fixtures(project: Path) -> None:
    # Without --strict-markers: newer pytest versions stop at collection on
    # the plugin's unregistered marker (exit 2) before fixtures are looked up.
    (project / "pytest.ini").write_text("[pytest]\n")
    done, _ = run_pytest(project, plugin=False)
    assert done.returncode == 1, done.stdout
    assert "fixture 'cluster_config' not found" in done.stdout


def test_draw_seeded_is_reproducible_and_depends_on_the_seed() -> None:
    strategy = ds.cluster_configs(min_service_ranges=1)
    assert draw_seeded(strategy, 3) == draw_seeded(strategy, 3)
    assert len({draw_seeded(strategy, seed) for seed in range(6)}) > 1


# ------------------------------------------------------------ the docs' worked example


def doc_files() -> dict[str, str]:
    """The code blocks of docs/testing.md whose first line names a file."""
    text = DOCS.read_text()
    files = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        first = block.splitlines()[0]
        match = re.fullmatch(r"# (\w+\.py)", first.strip())
        if match:
            files[match.group(1)] = textwrap.dedent(block)
    return files


def test_the_docs_example_runs(tmp_path: Path) -> None:
    files = doc_files()
    assert {"my_controller.py", "conftest.py", "test_my_controller.py"} <= set(files)
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    done, _ = run_pytest(tmp_path, plugin=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout
    assert "failed" not in done.stdout
