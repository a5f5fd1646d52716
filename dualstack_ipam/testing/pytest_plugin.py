"""pytest fixtures for code that uses dualstack_ipam: a realistic cluster per test, seeded.

Opt in on the command line or in a ``conftest.py``::

    pytest -p dualstack_ipam.testing.pytest_plugin
    pytest_plugins = ["dualstack_ipam.testing.pytest_plugin"]

Fixtures (function-scoped):

- ``cluster_config``: a :class:`~dualstack_ipam.ClusterConfig` drawn from
  :func:`~dualstack_ipam.testing.strategies.cluster_configs` with at least
  one Service range with an address and room for a node, unless the test's
  ``@pytest.mark.dualstack_ipam(...)`` marker passes other arguments to
  ``cluster_configs`` (``@pytest.mark.dualstack_ipam(dual_stack=True)``).
- ``node_allocator``: an empty :class:`~dualstack_ipam.NodeCIDRAllocator`
  for ``cluster_config``.
- ``service_allocator``: an empty
  :class:`~dualstack_ipam.services.allocator.ServiceIPAllocator` for
  ``cluster_config``, its ``rng`` seeded.
- ``dualstack_ipam_seed``: the test's seed (an ``int``).

Reproducible: each test's seed is derived from ``--dualstack-ipam-seed``
(default 0) and the test's node id, so a test gets the same cluster on
every run and different tests get different clusters. A failing test's
report names the seed and the cluster. For many clusters per test, use the
strategies with ``@given`` instead (function-scoped fixtures and ``@given``
do not mix).
"""

from __future__ import annotations

import random
import zlib
from typing import Any, TypeVar

import pytest

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.services.allocator import ServiceIPAllocator

from ._common import st
from .strategies import cluster_configs

try:
    from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
except ImportError as exc:  # pragma: no cover - _common already said it
    raise ImportError("dualstack_ipam.testing.pytest_plugin needs Hypothesis") from exc

__all__ = [
    "DEFAULT_SEED",
    "cluster_config",
    "draw_seeded",
    "dualstack_ipam_seed",
    "node_allocator",
    "service_allocator",
]

T = TypeVar("T")

DEFAULT_SEED = 0
"""The seed when ``--dualstack-ipam-seed`` is not given."""

DEFAULT_CONFIG_ARGS: dict[str, Any] = {
    "min_service_ranges": 1,
    "min_nodes": 1,
    "min_service_ips": 1,
}
"""What ``cluster_config`` asks of :func:`cluster_configs` unless the marker says otherwise."""

_MARKER = "dualstack_ipam"
_REPORT_KEY = pytest.StashKey[str]()
# Hypothesis' first example is always its simplest; a few more make the
# seed matter. The example taken is fixed, so the draw is reproducible.
_EXAMPLES = 5


def draw_seeded(strategy: st.SearchStrategy[T], seed_value: int) -> T:
    """One value of ``strategy``, the same for the same seed (and Hypothesis version).

    Runs a tiny generate-only Hypothesis search with ``@seed(seed_value)``
    and keeps its last example. Settings are spelled out, so the user's
    profile (``derandomize``, a database) changes nothing.

    >>> from dualstack_ipam.testing.strategies import cluster_configs
    >>> draw_seeded(cluster_configs(), 7) == draw_seeded(cluster_configs(), 7)
    True
    """
    drawn: list[T] = []

    @seed(seed_value)
    @settings(
        max_examples=_EXAMPLES,
        phases=[Phase.generate],
        database=None,
        derandomize=False,
        deadline=None,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn[-1]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--dualstack-ipam-seed``."""
    group = parser.getgroup("dualstack_ipam")
    group.addoption(
        "--dualstack-ipam-seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"seed for the dualstack_ipam fixtures (default {DEFAULT_SEED})",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``dualstack_ipam`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): arguments for cluster_configs() behind the cluster_config fixture",
    )


def pytest_report_header(config: pytest.Config) -> str:
    """Name the seed at the top of the run."""
    return f"dualstack_ipam: --dualstack-ipam-seed={config.getoption('dualstack_ipam_seed')}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Add the seed and the cluster to a failing test's report."""
    report = yield
    text = item.stash.get(_REPORT_KEY, None)
    if text is not None and report.failed:
        report.sections.append(("dualstack_ipam", text))
    return report


@pytest.fixture
def dualstack_ipam_seed(request: pytest.FixtureRequest) -> int:
    """This test's seed: ``--dualstack-ipam-seed`` mixed with the test's node id."""
    base = request.config.getoption("dualstack_ipam_seed")
    return zlib.crc32(f"{base}:{request.node.nodeid}".encode())


@pytest.fixture
def cluster_config(request: pytest.FixtureRequest, dualstack_ipam_seed: int) -> ClusterConfig:
    """A realistic cluster configuration, the same on every run of this test."""
    marker = request.node.get_closest_marker(_MARKER)
    if marker is not None and marker.args:
        raise TypeError(f"@pytest.mark.{_MARKER} takes keyword arguments only: {marker.args!r}")
    kwargs = {**DEFAULT_CONFIG_ARGS, **(marker.kwargs if marker is not None else {})}
    config = draw_seeded(cluster_configs(**kwargs), dualstack_ipam_seed)
    seed_option = request.config.getoption("dualstack_ipam_seed")
    request.node.stash[_REPORT_KEY] = (
        f"--dualstack-ipam-seed={seed_option} (test seed {dualstack_ipam_seed})\n"
        f"cluster_config = {config!r}"
    )
    return config


@pytest.fixture
def node_allocator(cluster_config: ClusterConfig) -> NodeCIDRAllocator:
    """An empty NodeCIDRAllocator for ``cluster_config``."""
    return NodeCIDRAllocator(cluster_config)


@pytest.fixture
def service_allocator(
    cluster_config: ClusterConfig, dualstack_ipam_seed: int
) -> ServiceIPAllocator:
    """An empty ServiceIPAllocator for ``cluster_config``, its random strategy seeded."""
    return ServiceIPAllocator(cluster_config, rng=random.Random(dualstack_ipam_seed))
