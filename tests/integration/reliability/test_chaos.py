"""Quick chaos: the controller killed with SIGKILL while rollouts with and without analysis run;
every one ends as an uninterrupted run ends. Full run: ``python -m benchmarks.reliability
--suite chaos`` (200 rollouts and more; figures in docs/reliability.md)."""

from __future__ import annotations

import pytest

from tests.reliability.chaos import chaos

pytestmark = pytest.mark.integration


def test_rollouts_end_as_uninterrupted_ones_under_kills() -> None:
    report = chaos(9, seed=3, kills=3, kill_every=(1.5, 4.0))
    assert report.failures == []
    # updates in waves, one before each kill: every kill strikes Rollouts on their way
    assert report.kills == 3 and report.kills_mid_rollout == 3
    assert report.as_expected == report.rollouts == 9
    assert report.controller_exits == 0
    assert report.outcomes == {"plain:Healthy": 3, "good:Healthy": 3, "bad:Degraded": 3}
