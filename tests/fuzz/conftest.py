"""Hypothesis profiles for the fuzz harness.

- ``ci`` (the default here): a fixed, derandomised budget of 100 examples a test; the whole
  directory runs in a few CPU-seconds, the same inputs every run.
- ``long``: ``python -m pytest tests/fuzz --hypothesis-profile long``, about ten minutes of
  fresh random inputs; run it after changing a parser.

Both print Hypothesis' statistics with ``--hypothesis-show-statistics``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "long",
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
)


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis' own plugin loads the profile named by --hypothesis-profile; without one,
    # the fuzz tests run on the fixed, derandomised CI budget.
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile("ci")
