"""How long integration tests wait for a condition before calling it failed.

Tests wait on conditions, never on the clock; the timeout only bounds how long a broken feature
takes to fail. The suite runs on shared machines (two cores, several pytest-xdist workers, other
jobs), where a step that takes 1 s alone can take several, so every timeout is stretched by
``SLUICE_TEST_PATIENCE`` (default 3): passing tests are not slowed, failing ones fail later.
"""

from __future__ import annotations

import os

FACTOR = float(os.environ.get("SLUICE_TEST_PATIENCE", "3"))


def patience(seconds: float) -> float:
    """``seconds`` as written in the test, stretched for a loaded machine."""
    return seconds * FACTOR
