"""Fixtures for property-based tests of code that uses dualstack_ipam.

Three ways in, all needing Hypothesis (``pip install 'dualstack_ipam[testing]'``):

- :mod:`dualstack_ipam.testing.strategies`: Hypothesis strategies for
  networks, cluster configurations, pools and allocators in realistic states
  (empty, half full, one free slot, full), and valid and invalid Service
  manifests.
- :mod:`dualstack_ipam.testing.stateful`: a reference model and a
  ``RuleBasedStateMachine`` to subclass, which drives nodes and Services
  through our allocators and calls your controller at every step.
- :mod:`dualstack_ipam.testing.pytest_plugin`: opt-in pytest fixtures
  (``cluster_config``, ``node_allocator``, ``service_allocator``), seeded.

Installing the package also registers the strategies with Hypothesis (its
``hypothesis`` entry point), so ``st.from_type(ClusterConfig)`` gives valid
configurations.

This package itself imports nothing, so that ``import dualstack_ipam.testing``
works without Hypothesis; each submodule says clearly when it is missing.
See ``docs/testing.md`` for a worked example.
"""

from __future__ import annotations

__all__: list[str] = []
