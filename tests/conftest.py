"""Test-wide settings: property-based tests are derandomised, so a run's verdict depends on the code alone."""

from __future__ import annotations

from hypothesis import settings

# Every run (local and CI) draws the same examples; `pytest --hypothesis-profile=explore` searches afresh.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("deterministic")
