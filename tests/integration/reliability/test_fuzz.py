"""Quick fuzz: generated bad bodies applied raw, each ends with a status naming what is wrong.

The full run (10,000 bodies) is ``python -m benchmarks.reliability --suite fuzz``; its figures
are in docs/reliability.md.
"""

from __future__ import annotations

import pytest

from tests.reliability.fuzz import fuzz_rollouts, fuzz_templates

pytestmark = pytest.mark.integration


def test_bad_rollout_bodies_are_stalled_naming_a_field_and_the_neighbour_promotes() -> None:
    report = fuzz_rollouts(30, seed=7)
    assert report.failures == []
    assert report.invalid >= 15  # the generator made mostly bad bodies: the check was exercised
    assert report.stalled_naming_field == report.invalid
    assert report.neighbours_promoted == 1
    assert report.controller_exits == 0


def test_bad_template_bodies_abort_naming_the_field_and_never_promote() -> None:
    report = fuzz_templates(10, seed=7)
    assert report.failures == []
    assert report.invalid >= 5
    assert report.stalled_naming_field == report.invalid
    assert report.promoted_without_evidence == 0
    assert report.neighbours_promoted == 1
