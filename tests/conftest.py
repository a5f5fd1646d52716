"""Shared pytest configuration: the Hypothesis settings profiles.

``default`` keeps the suite quick on a small machine; ``ci`` is the same
budget, derandomized so that a CI failure replays exactly, and prints the
reproduction blob. ``CI`` in the environment selects ``ci``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else "default")
